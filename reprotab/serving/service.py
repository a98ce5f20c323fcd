"""`reprotab serve`: the served model over HTTP (FastAPI + uvicorn), with canary and shadow.

The app's wiring: endpoints, limits, metrics, /metadata, start-up. Request parsing lives in
reprotab/serving/payload.py, what happens to a parsed request (route, clean, score, log) in
reprotab/serving/routing.py, metrics in reprotab/serving/telemetry.py.

    reprotab serve [--model PATH | --stage NAME | --version V] [--host 127.0.0.1] [--port 8000]
                   [--max-rows 10000] [--max-bytes 5000000] [--log-dir logs/predictions]
                   [--canary V | --canary-model PATH] [--canary-share 0.1]
                   [--shadow V | --shadow-model PATH]

Endpoints (every response has the `X-Model-Version` header; JSON bodies a `model_version`):
  GET  /health    the process is up
  GET  /ready     the model is loaded and the app started (503 before)
  GET  /metadata  version, commit, features and their kinds, classes, threshold, training data hash,
                  the gate's decision when reports/gate/decision.json sits in the model's repository
  GET  /metrics   Prometheus text: requests by endpoint and status, errors by kind, latency,
                  predictions by route and class (regression: a histogram of predicted values)
  POST /predict   {"rows": [{feature: value, ...}, ...], "request_id": "optional"} →
                  {"request_id", "model_version", "route", "threshold",
                   "predictions": [{"prediction": ..., "proba": {class: p} | null}, ...],
                   "cleaning": {feature: what cleaning found, for features it changed}}

Rows are checked against the model's schema: every feature present, no other field; numeric
features take a finite number, a boolean, text or null; categorical ones take text, an integer,
a boolean or null. Values are then cleaned by the policy for every incoming row
(reprotab/data/incoming.py): blank, null, ±inf and text that is not a number are imputed and
reported under `cleaning` (with unseen categories), unless fewer than 95% of the request's
values of a numeric feature are numbers: then each such row and field is a 422.
Errors are 422 with one entry per bad row and field: {"detail": [{"row", "field", "error"}]}
(row and field null when the whole body is wrong). Malformed JSON, a body that is not
{"rows": [...]}, an empty batch, bare NaN or ±Infinity (which Python's JSON parser would accept) and
rows the model cannot score are 422; more rows than --max-rows or a body over --max-bytes are 413.

Canary: a deterministic share of requests (by a hash of the request id the client sends, else
a fresh uuid4) is answered by the challenger. Shadow: the challenger also scores every request
after the answer is sent; its predictions are only logged. Every prediction served (and every
shadow one) goes to the prediction log (format: reprotab/serving/prediction_log.py): a large request's
lines just after its answer is sent, so writing them is not part of its latency.
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from reprotab import paths
from reprotab.data.incoming import CleanedRows
from reprotab.errors import UserError, problem
from reprotab.model.card import ModelCard
from reprotab.registry.gate_decision import GateDecision
from reprotab.runner import stage_main
from reprotab.serving.payload import ApiError, parse_request, read_body, rows_validator, validation_errors
from reprotab.serving.prediction_log import DEFAULT_MAX_BYTES, PredictionLog
from reprotab.serving.routing import Served, route_of, serve_rows, shadow_rows, warm
from reprotab.serving.scoring import add_model_arguments, resolve_model
from reprotab.serving.telemetry import Telemetry

log = logging.getLogger(__name__)
ENDPOINTS = ("/health", "/ready", "/metadata", "/metrics", "/predict")
VERSION_HEADER = "X-Model-Version"
INLINE_BYTES = 16_384  # request bodies up to this size are scored on the event loop, not in a worker thread


@dataclass(frozen=True)
class ServiceConfig:
    max_rows: int = 10_000
    max_bytes: int = 5_000_000
    log_dir: str = "logs/predictions"
    log_max_bytes: int = DEFAULT_MAX_BYTES
    canary_share: float = 0.0


def create_app(
    champion: Served,
    *,
    config: ServiceConfig = ServiceConfig(),
    canary: Served | None = None,
    shadow: Served | None = None,
) -> FastAPI:
    """The service for `champion` (and optionally a canary and a shadow challenger)."""
    schema = champion.model.schema
    for role, other in (("canary", canary), ("shadow", shadow)):
        if other is not None and tuple(other.model.schema.features) != tuple(schema.features):
            raise UserError(
                problem(
                    f"--{role}",
                    "must take the same feature columns as the champion",
                    f"{list(other.model.schema.features)} vs {list(schema.features)}",
                )
            )
        if other is not None and other.model.schema.id_column != schema.id_column:  # rows echo and log it
            raise UserError(
                problem(
                    f"--{role}",
                    "must name the same id column as the champion",
                    f"{other.model.schema.id_column} vs {schema.id_column}",
                )
            )
    validator = rows_validator(schema)
    telemetry = Telemetry(schema.task)
    prediction_log = PredictionLog(config.log_dir, max_bytes=config.log_max_bytes)
    version = champion.version

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for served in (champion, canary, shadow):
            if served is not None:
                warm(served)
        app.state.ready = True
        log.info("serving model %s (%s)", version, champion.info.get("path") or champion.info.get("stage"))
        yield
        app.state.ready = False
        prediction_log.close()

    app = FastAPI(title="reprotab", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ready = False
    app.state.prediction_log = prediction_log

    app.add_middleware(Observe, telemetry=telemetry, version=version)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        telemetry.errors.labels(request.url.path, exc.kind).inc()
        return JSONResponse({"detail": exc.detail, "model_version": version}, status_code=exc.status)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_version": version}

    @app.get("/ready")
    def ready(request: Request) -> JSONResponse:
        up = bool(request.app.state.ready)
        body = {"status": "ready" if up else "starting", "model_version": version}
        return JSONResponse(body, status_code=200 if up else 503)

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return describe(champion, config=config, canary=canary, shadow=shadow)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)

    def handle(
        body: bytes,
    ) -> tuple[Served, CleanedRows, list[dict[str, Any]], dict[str, Any], Callable[[], None]]:
        """Parse, check, route and score one request (CPU work: a large one runs in a worker thread)."""
        rows, request_id = parse_request(body, config.max_rows)
        try:
            validator.validate_python(rows)
        except ValidationError as exc:
            raise ApiError(422, validation_errors(exc, schema), "validation") from None
        route = route_of(request_id, config.canary_share) if canary is not None else "champion"
        answering = canary if route == "canary" and canary is not None else champion
        cleaned, reply, log_lines = serve_rows(answering, rows, request_id, route, prediction_log, telemetry)
        return answering, cleaned, rows, reply, log_lines

    @app.post("/predict")
    async def predict(request: Request, background: BackgroundTasks) -> Response:
        body = await read_body(request, config.max_bytes)
        if len(body) <= INLINE_BYTES:  # a few rows: scoring is cheaper than the hop to a worker thread
            answering, cleaned, rows, reply, log_lines = handle(body)
            log_lines()
        else:  # many rows: their log lines are written just after the answer is sent
            answering, cleaned, rows, reply, log_lines = await run_in_threadpool(handle, body)
            background.add_task(log_lines)
        if shadow is not None:
            background.add_task(shadow_rows, shadow, cleaned, rows, reply["request_id"], prediction_log, telemetry)
        reply["threshold"] = answering.model.decision_threshold
        content = orjson.dumps(reply, default=str)  # a tenth of the standard library's time on 1,000 rows
        return Response(content, media_type="application/json", headers={VERSION_HEADER: answering.version})

    return app


class Observe:
    """ASGI middleware: every response gets the `X-Model-Version` header (unless the endpoint set
    one) and is counted and timed by endpoint and status. Plain ASGI rather than Starlette's
    `BaseHTTPMiddleware`, which wraps every response in a stream and cost a fifth of a request."""

    def __init__(self, app: Any, *, telemetry: Telemetry, version: str) -> None:
        self.app, self.telemetry = app, telemetry
        self.header = (VERSION_HEADER.lower().encode(), version.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = [500]

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == self.header[0] for name, _ in headers):
                    headers.append(self.header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.telemetry.requests.labels(endpoint, str(status[0])).inc()
            self.telemetry.latency.labels(endpoint).observe(time.perf_counter() - started)


def describe(
    champion: Served, *, config: ServiceConfig, canary: Served | None, shadow: Served | None
) -> dict[str, Any]:
    """What /metadata returns."""
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
        "model": card.model if card else None,
        "training_data_hash": card.training_data_hash if card else None,
        "limits": {"max_rows": config.max_rows, "max_bytes": config.max_bytes},
        "canary": {"version": canary.version, "share": config.canary_share} if canary else None,
        "shadow": {"version": shadow.version} if shadow else None,
    }
    if info.get("path"):
        gate = Path(info["path"]).resolve().parent.parent / paths.GATE_DECISION
        if gate.is_file():
            try:
                result["gate"] = GateDecision.from_json(gate).to_dict()
            except UserError as exc:
                log.warning("/metadata leaves the gate out: %s", exc)
    return result


def load_challenger(role: str, version: str | None, path: str | None) -> Served | None:
    if not (version or path):
        return None
    if version and path:
        raise UserError(problem(f"--{role}", f"give --{role} or --{role}-model, not both", f"{version} and {path}"))
    return Served(*resolve_model(path, version=version))


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


@stage_main("serve", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab serve", description="Serve the model over HTTP.")
    add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 inside a container)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-rows", type=int, default=10_000, help="rows per request (more: 413)")
    parser.add_argument("--max-bytes", type=int, default=5_000_000, help="request body bytes (more: 413)")
    parser.add_argument("--log-dir", default="logs/predictions", help="prediction log directory")
    parser.add_argument("--log-max-mb", type=float, default=DEFAULT_MAX_BYTES / 2**20, help="rotate log past this")
    parser.add_argument("--canary", help="registered version that answers a share of requests")
    parser.add_argument("--canary-model", help="model file that answers a share of requests")
    parser.add_argument("--canary-share", type=float, default=0.1, help="share of requests for the canary")
    parser.add_argument("--shadow", help="registered version that scores every request, logged only")
    parser.add_argument("--shadow-model", help="model file that scores every request, logged only")
    args = parser.parse_args(argv)
    for name, value, low in (("--max-rows", args.max_rows, 1), ("--max-bytes", args.max_bytes, 1)):
        if value < low:
            raise UserError(problem(name, f"must be at least {low}", value))
    if not 0.0 <= args.canary_share <= 1.0 or math.isnan(args.canary_share):
        raise UserError(problem("--canary-share", "must be between 0 and 1", args.canary_share))
    sock = bind(args.host, args.port)
    try:
        serve(args, sock)
    finally:
        sock.close()


def serve(args: argparse.Namespace, sock: socket.socket) -> None:
    """Load the models and serve them on `sock` (bound by `bind`) until stopped."""
    champion = Served(*resolve_model(args.model, stage=args.stage, version=args.version))
    canary = load_challenger("canary", args.canary, args.canary_model)
    shadow = load_challenger("shadow", args.shadow, args.shadow_model)
    config = ServiceConfig(
        max_rows=args.max_rows,
        max_bytes=args.max_bytes,
        log_dir=args.log_dir,
        log_max_bytes=int(args.log_max_mb * 2**20),
        canary_share=args.canary_share if canary else 0.0,
    )
    app = create_app(champion, config=config, canary=canary, shadow=shadow)
    import uvicorn

    log.info("listening on http://%s:%d", args.host, args.port)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    server.run(sockets=[sock])
    if not server.started:  # the app's start-up failed (logged above); as uvicorn.run exits
        raise SystemExit(3)
