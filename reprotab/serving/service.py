"""`reprotab serve`: the served model over HTTP (FastAPI + uvicorn), ready to expose to a network.

The app's wiring: endpoints, start-up, reloads. What every request passes first (API keys, rate
limit, load shedding, deadline, the error envelope) is reprotab/serving/guard.py; request parsing
reprotab/serving/payload.py; what happens to a parsed request (route, clean, score, log)
reprotab/serving/routing.py; which models serve and how they change while running (hot promotion)
reprotab/serving/deployment.py; labels sent back reprotab/serving/feedback.py; the OpenAPI contract
reprotab/serving/contract.py; metrics reprotab/serving/telemetry.py; keys reprotab/serving/keys.py.

    reprotab serve [--model PATH | --stage NAME | --version V] [--host 127.0.0.1] [--port 8000]
                   [--keys secrets/api-keys.json] [--params params.yaml]
                   [--canary V | --canary-model PATH | --canary-stage NAME] [--canary-share 0.1]
                   [--shadow V | --shadow-model PATH] [--poll-seconds S]
                   [--max-rows N] [--max-bytes N] [--log-dir DIR] [--log-max-mb MB]
    reprotab serve keys add NAME --scope predict [--scope read] [--file secrets/api-keys.json]

Settings come from params.yaml's `serve:` and `canary:` blocks (defaults when there is no such
file); the flags above override them. On an address other than loopback the service refuses to
start without API keys.

Endpoints (every response has the `X-Model-Version` header; JSON bodies a `model_version`; every
error is `{"detail": [{"row", "field", "error"}], "model_version"}`); scopes with keys configured:
  GET  /health         open      the process is up
  GET  /ready          open      the models are loaded and warmed (503 before)
  GET  /metadata       read      the models serving (each one's own gate decision), limits, reloads
  GET  /metrics        read      Prometheus text (names: reprotab/serving/telemetry.py)
  GET  /openapi.json   read      the contract: /predict's rows feature by feature; /docs shows it
  POST /predict        predict   {"rows": [{feature: value, ...}, ...], "request_id": "optional"} →
                                 {"request_id", "model_version", "route", "threshold",
                                  "predictions": [{"id"?, "prediction", "proba"}], "cleaning"}
  POST /feedback       predict   {"labels": [{"id" | "request_id" (+"position"), "label"}]}
  POST /admin/reload   admin     read the registry now and swap in a new version (also: SIGHUP)

Rows are checked against the model's schema: every feature present, no other field but the id
column; numeric features take a finite number, a boolean, text or null; categorical ones text, an
integer, a boolean or null. Values are then cleaned by the policy for every incoming row
(reprotab/data/incoming.py): blank, null, ±inf and text that is not a number are imputed and
reported under `cleaning` (with unseen categories), unless fewer than 95% of the request's values
of a numeric feature are numbers: then each such row and field is a 422. Malformed JSON, a body
that is not {"rows": [...]}, an empty batch, bare NaN or ±Infinity and rows the model cannot score
are 422; more rows than the limit or a body over it are 413; 401/403 for keys, 429 for the rate
limit, 503 when shedding load or past the deadline (reprotab/serving/guard.py).

Canary: a deterministic share of requests (by a hash of the request id the client sends, else a
fresh uuid4) is answered by the challenger. Shadow: the challenger also scores every request
after the answer is sent; its predictions are only logged. Every prediction served (and every
shadow one) goes to the prediction log, as `serve.log` allows (reprotab/serving/prediction_log.py).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reprotab.data.incoming import CleanedRows
from reprotab.errors import UserError, problem
from reprotab.model.card import ModelCard
from reprotab.params.sections import CanaryParams, LimitsParams, PredictionLogParams
from reprotab.runner import stage_main
from reprotab.serving import contract
from reprotab.serving.deployment import Deployment, Holder, Poller, Source, assemble, load_served, registry_now
from reprotab.serving.feedback import FeedbackLog, LiveScore, parse_feedback
from reprotab.serving.guard import ENDPOINTS, VERSION_HEADER, Guard
from reprotab.serving.keys import DEFAULT_FILE, KeyRing
from reprotab.serving.payload import ApiError, entry, parse_request, read_body, validation_errors
from reprotab.serving.prediction_log import HASH_ID, PredictionLog, hash_key, keyed_hash
from reprotab.serving.routing import Served, serve_rows, shadow_rows
from reprotab.serving.telemetry import Telemetry

log = logging.getLogger(__name__)
__all__ = ["ENDPOINTS", "VERSION_HEADER", "ServiceConfig", "create_app", "main"]
RETRY = {"Retry-After": "1"}
INLINE_BYTES = 16_384  # request bodies up to this size are scored on the event loop, not in a worker thread


@dataclass(frozen=True)
class ServiceConfig:
    """The service's settings: params.yaml's `serve:` and `canary:` blocks with the flags applied."""

    max_rows: int = 10_000
    max_bytes: int = 5_000_000
    log_dir: str = "logs/predictions"
    log_max_bytes: int = 50 * 2**20
    canary_share: float = 0.0
    rate_per_second: float | None = None  # off unless asked: an in-process client is one "address"
    burst: int = 100
    max_in_flight: int = 2
    timeout_seconds: float = 10.0
    poll_seconds: float = 0.0
    log: PredictionLogParams | None = None  # None: log everything to log_dir (the hardening still applies)
    canary: CanaryParams = field(default_factory=CanaryParams)

    @property
    def limits(self) -> LimitsParams:
        return LimitsParams(
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            rate_per_second=self.rate_per_second,
            burst=self.burst,
            max_in_flight=self.max_in_flight,
            timeout_seconds=self.timeout_seconds,
        )

    def prediction_log(self) -> PredictionLog:
        policy = (self.log or PredictionLogParams()).model_copy(
            update={"dir": self.log_dir, "max_file_mb": self.log_max_bytes / 2**20}
        )
        return PredictionLog.from_params(policy)


def create_app(
    champion: Served | Deployment,
    *,
    config: ServiceConfig = ServiceConfig(),
    canary: Served | None = None,
    shadow: Served | None = None,
    keys: KeyRing | None = None,
    sources: dict[str, Source | None] | None = None,
    keys_path: str | None = None,
) -> FastAPI:
    """The service for `champion` (and optionally a canary and a shadow challenger); `sources`
    say where each role's model comes from, so a reload can swap in a new one; `keys_path` is
    read again on each forced reload (SIGHUP, /admin/reload), so a removed key stops working."""
    auth = {"keys": keys}
    deployment = (
        champion
        if isinstance(champion, Deployment)
        else assemble(champion, canary=canary, shadow=shadow, canary_share=config.canary_share)
    )
    schema = deployment.champion.model.schema
    telemetry = Telemetry(schema.task)
    prediction_log = config.prediction_log()
    feedback_log = FeedbackLog(Path(config.log_dir) / "feedback", hash_id=id_hasher(config))
    live = LiveScore(schema.task)
    documents: dict[str, dict[str, Any]] = {}

    def changed(new: Deployment) -> None:
        telemetry.serving(new.roles())
        documents.clear()  # the contract follows the champion's features

    holder = Holder(deployment, sources=sources, canary_share=config.canary_share, on_change=changed)
    changed(deployment)
    poller = Poller(holder, config.poll_seconds, on_result=lambda r: telemetry.reloads.labels(r["outcome"]).inc())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, reload_now))
        poller.start()
        app.state.ready = True
        log.info("serving %s", holder.current.roles())
        yield
        app.state.ready = False
        poller.stop()
        prediction_log.close()

    def reload_now() -> dict[str, Any]:
        if keys_path:
            try:
                auth["keys"] = KeyRing.load(keys_path)
            except UserError as exc:  # the keys in force stay
                log.error("API keys not reloaded, the previous ones stay: %s", exc)
        result = holder.reload(force=True)
        telemetry.reloads.labels(result["outcome"]).inc()
        return result

    app = FastAPI(title="reprotab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ready = False
    app.state.prediction_log = prediction_log
    app.state.holder = holder
    app.add_middleware(
        Guard,
        telemetry=telemetry,
        version=lambda: holder.current.champion.version,
        limits=config.limits,
        keys=lambda: auth["keys"],
    )

    def error(
        status: int, detail: list[dict[str, Any]], request: Request, kind: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        path = request.url.path
        telemetry.errors.labels(path if path in ENDPOINTS else "other", kind).inc()
        body = {"detail": detail, "model_version": holder.current.champion.version}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.detail, request, exc.kind, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method"}.get(exc.status_code, "http")
        return error(exc.status_code, [entry(None, None, str(exc.detail))], request, kind)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(422, [entry(None, None, "malformed request")], request, "malformed")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_version": holder.current.champion.version}

    @app.get("/ready")
    def ready(request: Request) -> JSONResponse:
        version = holder.current.champion.version
        if request.app.state.ready:
            return JSONResponse({"status": "ready", "model_version": version})
        body = {"status": "starting", "detail": [entry(None, None, "starting: the models are being warmed")]}
        return JSONResponse({**body, "model_version": version}, status_code=503, headers={"Retry-After": "1"})

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return describe(holder, config=config, keys=auth["keys"], live=live)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json() -> Response:
        current = holder.current.champion
        if current.version not in documents:
            documents.clear()
            documents[current.version] = contract.openapi(app, current.model.schema, current.version)
        return Response(orjson.dumps(documents[current.version]), media_type="application/json")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="reprotab: API")

    def handle(
        body: bytes, current: Deployment
    ) -> tuple[Served, CleanedRows, list[dict[str, Any]], dict[str, Any], Callable[[], None]]:
        """Parse, check, route and score one request (CPU work: a large one runs in a worker thread)."""
        rows, request_id = parse_request(body, config.max_rows)
        try:
            assert current.validator is not None  # assemble builds it
            current.validator.validate_python(rows)
        except ValidationError as exc:
            raise ApiError(422, validation_errors(exc, current.champion.model.schema), "validation") from None
        route, answering = current.answering(request_id)
        cleaned, reply, log_lines = serve_rows(answering, rows, request_id, route, prediction_log, telemetry)
        id_column = answering.model.schema.id_column
        ids = [row.get(id_column) for row in rows] if id_column else []
        predictions = [p["prediction"] for p in reply["predictions"]]

        def after() -> None:  # the log lines, and the predictions /feedback labels are scored against
            log_lines()
            live.remember(route, request_id, ids, predictions)

        return answering, cleaned, rows, reply, after

    @app.post("/predict")
    async def predict(request: Request, background: BackgroundTasks) -> Response:
        current = holder.current  # this request's models, whatever is swapped in meanwhile
        body = await read_body(request, config.max_bytes)
        deadline = request.scope.get("state", {}).get("deadline", math.inf)
        if time.monotonic() > deadline:
            raise ApiError(503, [entry(None, None, "waited past the deadline before it could start")], "timeout", RETRY)
        if len(body) <= INLINE_BYTES:  # a few rows: scoring is cheaper than the hop to a worker thread
            answering, cleaned, rows, reply, log_lines = handle(body, current)
            log_lines()
        else:  # many rows: their log lines are written just after the answer is sent
            work = run_in_threadpool(handle, body, current)
            try:
                answering, cleaned, rows, reply, log_lines = await asyncio.wait_for(
                    work, max(0.0, deadline - time.monotonic())
                )
            except TimeoutError:
                raise ApiError(
                    503, [entry(None, None, f"not answered within {config.timeout_seconds:g} s")], "timeout", RETRY
                ) from None
            background.add_task(log_lines)
        if current.shadow is not None:
            background.add_task(
                shadow_rows, current.shadow, cleaned, rows, reply["request_id"], prediction_log, telemetry
            )
        reply["threshold"] = answering.model.decision_threshold
        content = orjson.dumps(reply, default=str)  # a tenth of the standard library's time on 1,000 rows
        return Response(content, media_type="application/json", headers={VERSION_HEADER: answering.version})

    @app.post("/feedback")
    async def feedback(request: Request) -> Response:
        current = holder.current
        body = await read_body(request, config.max_bytes)
        labels = parse_feedback(body, current.champion.model.schema, config.max_rows)
        feedback_log.write(labels, key=request.scope.get("state", {}).get("key"))
        matched = live.score(labels)
        for route, count in matched.items():
            telemetry.feedback.labels(route).inc(count)
            error = live.error(route)
            if error is not None:
                telemetry.live_error.labels(route).set(error)
        if config.canary.auto_rollback and current.canary is not None and not current.canary_stopped:
            reason = live.guard(config.canary.max_worsening, config.canary.min_labels)
            if reason:
                holder.stop_canary(reason)
        answer = {"received": len(labels), "matched": matched, "model_version": current.champion.version}
        return Response(orjson.dumps(answer), media_type="application/json")

    @app.post("/admin/reload")
    async def admin_reload() -> JSONResponse:
        result = await run_in_threadpool(reload_now)
        if result["outcome"] == "failed":
            raise ApiError(
                409, [entry(None, None, f"reload failed, the models serving stay: {result['error']}")], "reload"
            )
        return JSONResponse({**result, "model_version": holder.current.champion.version})

    return app


def id_hasher(config: ServiceConfig) -> Callable[[Any], Any] | None:
    """How /feedback stores a row id: hashed as the prediction log stores it, so the two still join."""
    if config.log is None or HASH_ID not in config.log.hash or not config.log.enabled:
        return None
    key = hash_key(config.log_dir)
    return lambda value: keyed_hash(key, value)


def describe(holder: Holder, *, config: ServiceConfig, keys: KeyRing | None, live: LiveScore) -> dict[str, Any]:
    """What /metadata returns: the models serving now, each with its own gate decision."""
    current = holder.current
    champion = current.champion
    model, info = champion.model, champion.info
    card = ModelCard.beside(info.get("path"))
    schema = model.schema
    result: dict[str, Any] = {
        "model_version": champion.version,
        "stage": info.get("stage"),
        "commit": info.get("commit"),  # a registered version's; None for a bare model file
        "task": schema.task,
        "kind": model.kind,
        "features": [{"name": c, "type": "numeric" if c in schema.numeric else "categorical"} for c in schema.features],
        "id_column": schema.id_column,
        "classes": list(schema.classes),
        "positive_class": schema.positive_class,
        "threshold": model.decision_threshold,
        "model": card.model if card else model.estimator_name,
        "training_data_hash": card.training_data_hash if card else None,
        "gate": champion.gate,
        "limits": config.limits.model_dump(),
        "auth": {"keys": len(keys)} if keys is not None else None,
        "canary": (
            {
                "version": current.canary.version,
                "share": current.canary_share,
                "stopped": current.canary_stopped,
                "gate": current.canary.gate,
            }
            if current.canary
            else None
        ),
        "shadow": {"version": current.shadow.version, "gate": current.shadow.gate} if current.shadow else None,
        "pid": os.getpid(),  # `kill -HUP <pid>` reloads
        "reload": {**holder.status, "poll_seconds": config.poll_seconds, "sources": _sources(holder)},
        "live_error": {route: live.error(route) for route in ("champion", "canary") if live.error(route) is not None},
    }
    return result


def _sources(holder: Holder) -> dict[str, str]:
    return {role: source.describe() for role, source in holder.sources.items() if source is not None}


def source_of(role: str, *, path: str | None, version: str | None, stage: str | None) -> Source | None:
    """Where a role's model comes from (at most one of a file, a version, a stage)."""
    given = [(f"--{role}{suffix}", v) for suffix, v in (("-model", path), ("", version), ("-stage", stage)) if v]
    if not given:
        return None
    if len(given) > 1:
        raise UserError(problem(f"--{role}", "give one of " + ", ".join(n for n, _ in given), None))
    return Source(path=path, version=version, stage=stage, flag=given[0][0])


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port for the server, or one UserError saying why it cannot be:
    checked before the models load and before "listening on" is logged."""
    if not 1 <= port <= 65535:
        raise UserError(problem("--port", "must be between 1 and 65535", port))
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UserError(problem("--host", f"is not an address of this machine ({exc.strerror})", host)) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart need not wait
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(
            problem(
                "--port",
                f"cannot listen on {host}:{port} ({exc.strerror})",
                port,
                f"Stop what holds it (`ss -ltnp 'sport = :{port}'`) or pick another --port",
            )
        ) from None
    return sock


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_keys(path: str | None, host: str, *, allow_no_keys: bool = False) -> KeyRing | None:
    """The API keys to require: `path`, else the default key file when it exists; none on a
    non-loopback address is refused, since anyone who can reach the port could score and read,
    unless the operator says the port is reachable only through something that authenticates
    (`--allow-no-keys`: a container published on the host's 127.0.0.1, a mesh)."""
    chosen = path or (str(DEFAULT_FILE) if DEFAULT_FILE.is_file() else None)
    keys = KeyRing.load(chosen) if chosen else None
    if allow_no_keys and (keys is None or len(keys) == 0):
        if not is_loopback(host):
            log.warning(
                "serving on %s without API keys (--allow-no-keys): anyone who reaches the port can use it", host
            )
        return None
    if not is_loopback(host) and (keys is None or len(keys) == 0):
        raise UserError(
            problem(
                "--host",
                "is reachable from other machines, so the service needs API keys",
                host,
                f"Make one: `reprotab serve keys add NAME --scope predict` and start with --keys {DEFAULT_FILE}"
                " (or listen on 127.0.0.1 behind your own proxy)",
            )
        )
    return keys


def settings(args: argparse.Namespace) -> ServiceConfig:
    """params.yaml's serve and canary blocks (defaults without the file), with the flags applied."""
    from reprotab.params.sections import ServeParams

    serve, canary = ServeParams(), CanaryParams()
    if Path(args.params).is_file():
        from reprotab.params.loader import load_params

        params = load_params(args.params)
        serve, canary = params.serve, params.canary
    limits = serve.limits
    config = ServiceConfig(
        max_rows=limits.max_rows if args.max_rows is None else args.max_rows,
        max_bytes=limits.max_bytes if args.max_bytes is None else args.max_bytes,
        log_dir=args.log_dir or serve.log.dir,
        log_max_bytes=int((serve.log.max_file_mb if args.log_max_mb is None else args.log_max_mb) * 2**20),
        canary_share=args.canary_share,
        rate_per_second=limits.rate_per_second,
        burst=limits.burst,
        max_in_flight=limits.max_in_flight,
        timeout_seconds=limits.timeout_seconds,
        poll_seconds=serve.poll_seconds if args.poll_seconds is None else args.poll_seconds,
        log=serve.log,
        canary=canary,
    )
    for name, value in (("--max-rows", config.max_rows), ("--max-bytes", config.max_bytes)):
        if value < 1:
            raise UserError(problem(name, "must be at least 1", value))
    if config.log_max_bytes < 1:
        raise UserError(problem("--log-max-mb", "must be more than 0", args.log_max_mb))
    if not 0.0 <= args.canary_share <= 1.0 or math.isnan(args.canary_share):
        raise UserError(problem("--canary-share", "must be between 0 and 1", args.canary_share))
    if config.poll_seconds < 0:
        raise UserError(problem("--poll-seconds", "must be 0 (never) or more", config.poll_seconds))
    return config


def main(argv: list[str] | None = None) -> None:
    """`reprotab serve ...`, or `reprotab serve keys ...` (reprotab/serving/keys.py)."""
    argv = list(sys.argv[2:] if argv is None else argv)
    if argv[:1] == ["keys"]:
        from reprotab.serving import keys as key_file

        key_file.main(argv[1:])
    else:
        run(argv)


@stage_main("serve", in_pipeline=False)
def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab serve", description="Serve the model over HTTP.")
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--model", help="a model file (default models/model.zip); SIGHUP reloads it if rewritten")
    models.add_argument("--stage", help="the model registered in this stage (e.g. prod), swapped when it moves")
    models.add_argument("--version", help="the registered model of this version")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (not loopback: needs --keys)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--keys", help=f"API key file (`reprotab serve keys add`); default {DEFAULT_FILE} if it exists")
    parser.add_argument(
        "--allow-no-keys",
        action="store_true",
        help="serve a non-loopback address without keys (only behind a proxy or mesh that authenticates)",
    )
    parser.add_argument("--params", default="params.yaml", help="its serve and canary blocks (defaults if absent)")
    parser.add_argument("--max-rows", type=int, help="rows per request (more: 413); default serve.limits")
    parser.add_argument("--max-bytes", type=int, help="request body bytes (more: 413); default serve.limits")
    parser.add_argument("--log-dir", help="prediction log directory; default serve.log.dir")
    parser.add_argument("--log-max-mb", type=float, help="rotate the log past this; default serve.log.max_file_mb")
    parser.add_argument("--canary", help="registered version that answers a share of requests")
    parser.add_argument("--canary-model", help="model file that answers a share of requests")
    parser.add_argument("--canary-stage", help="registry stage whose version is the canary (e.g. staging)")
    parser.add_argument("--canary-share", type=float, default=0.1, help="share of requests for the canary")
    parser.add_argument("--shadow", help="registered version that scores every request, logged only")
    parser.add_argument("--shadow-model", help="model file that scores every request, logged only")
    parser.add_argument("--poll-seconds", type=float, help="read the registry this often; default serve.poll_seconds")
    args = parser.parse_args(argv)
    config = settings(args)
    keys = load_keys(args.keys, args.host, allow_no_keys=args.allow_no_keys)
    sources = {
        "champion": source_of("model", path=args.model, version=args.version, stage=args.stage)
        or Source(path="models/model.zip"),
        "canary": source_of("canary", path=args.canary_model, version=args.canary, stage=args.canary_stage),
        "shadow": source_of("shadow", path=args.shadow_model, version=args.shadow, stage=None),
    }
    sock = bind(args.host, args.port)
    try:
        keys_path = args.keys or (str(DEFAULT_FILE) if keys is not None else None)
        serve(sources, config, keys, sock, host=args.host, port=args.port, keys_path=keys_path)
    finally:
        sock.close()


def idle_stage(source: Source) -> bool:
    """Whether `source` is a challenger's stage that holds no version yet: no challenger until one
    is assigned there (the champion's stage holding nothing is an error `load_served` reports)."""
    return source.stage is not None and source.stage not in registry_now(source.repo)


def serve(
    sources: dict[str, Source | None],
    config: ServiceConfig,
    keys: KeyRing | None,
    sock: socket.socket,
    *,
    host: str,
    port: int,
    keys_path: str | None = None,
) -> None:
    """Load the models and serve them on `sock` (bound by `bind`) until stopped."""
    loaded = {
        role: load_served(source) if source and (role == "champion" or not idle_stage(source)) else None
        for role, source in sources.items()
    }
    champion = loaded["champion"]
    assert champion is not None
    deployment = assemble(champion, canary=loaded["canary"], shadow=loaded["shadow"], canary_share=config.canary_share)
    app = create_app(deployment, config=config, keys=keys, sources=sources, keys_path=keys_path)
    import uvicorn

    log.info("listening on http://%s:%d%s", host, port, "" if keys is None else f" ({len(keys)} API keys)")
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    server.run(sockets=[sock])
    if not server.started:  # the app's start-up failed (logged above); as uvicorn.run exits
        raise SystemExit(3)
