"""What every request passes before an endpoint sees it: API keys, the per-client rate limit,
load shedding, the deadline, and the version header, metrics and error envelope on the way out.

A plain ASGI middleware (Starlette's `BaseHTTPMiddleware` wraps every response in a stream and
cost a fifth of a request). In order:

1. `/health` and `/ready` are open. With keys configured, every other path needs a key
   (`Authorization: Bearer <key>` or `X-API-Key`) whose scopes allow it (`SCOPE_OF`): no or an
   unknown key is 401 with `WWW-Authenticate: Bearer`, a key without the scope 403.
2. Rate limit: a token bucket per API key: `rate_per_second`, `burst` deep; an empty bucket is
   429 with `Retry-After` (whole seconds until a token). Without keys (loopback only) there is
   none: every client of a proxy shares one address, so a per-address limit would throttle all.
3. Load shedding: when `max_in_flight` requests of the work endpoints (/predict, /feedback) are
   being handled, the next is 503 with `Retry-After: 1` at once, before its body is read, so
   refusing costs far less than serving and the admitted requests' latency stays bounded.
4. Deadline: the request's `timeout_seconds` deadline is put in the ASGI scope
   (`scope["state"]["deadline"]`); the endpoint refuses work that can no longer make it (503).

Every refusal and every unhandled exception is an answer in the documented envelope
`{"detail": [{"row", "field", "error"}], "model_version"}` with the `X-Model-Version` header,
counted in /metrics by endpoint and kind; an exception is logged with its traceback and is a 500.
Keys never reach a log line: only a key's name does.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from reprotab.params.sections import LimitsParams
from reprotab.serving.keys import KeyRing
from reprotab.serving.telemetry import Telemetry

log = logging.getLogger(__name__)
VERSION_HEADER = "X-Model-Version"
OPEN = frozenset({"/health", "/ready"})
WORK = frozenset({"/predict", "/feedback"})  # shed under load; the rest are cheap and tell operators what happens
SCOPE_OF = {"/predict": "predict", "/feedback": "predict", "/admin/reload": "admin"}  # every other path: read
ENDPOINTS = ("/health", "/ready", "/metadata", "/metrics", "/predict", "/feedback", "/admin/reload")
MAX_CLIENTS = 10_000  # buckets kept (least recently used dropped): a flood of addresses cannot grow memory


class Buckets:
    """Token buckets by client: `rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when `client` may go now (a token is spent), else the seconds until it may."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
        self._buckets[client] = (tokens - 1 if wait == 0 else tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def envelope(error: str, version: str) -> bytes:
    """The error envelope of a refusal about the whole request."""
    return orjson.dumps({"detail": [{"row": None, "field": None, "error": error}], "model_version": version})


class Guard:
    """The middleware (see the module docstring); `version()` names the champion serving now,
    `keys()` the keys in force now (re-read on a reload)."""

    def __init__(
        self,
        app: Any,
        *,
        telemetry: Telemetry,
        version: Callable[[], str],
        limits: LimitsParams,
        keys: Callable[[], KeyRing | None] = lambda: None,
    ) -> None:
        self.app, self.telemetry, self.version, self.limits, self.keys = app, telemetry, version, limits, keys
        self.buckets = Buckets(limits.rate_per_second, limits.burst) if limits.rate_per_second else None
        self.in_flight = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        state = {"status": 500, "started": False, "counted": False, "done": False}
        version = self.version()
        header = (VERSION_HEADER.lower().encode(), version.encode())

        def finish() -> None:
            """The answer is sent: the request stops counting as in flight and is measured (work
            after it, such as writing a large request's log lines, belongs to no client)."""
            if state["done"]:
                return
            state["done"] = True
            if state["counted"]:
                self.in_flight -= 1
                self.telemetry.in_flight.dec()
            self.telemetry.requests.labels(endpoint, str(state["status"])).inc()
            self.telemetry.latency.labels(endpoint).observe(time.perf_counter() - started)

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                headers = list(message.get("headers", []))
                if not any(name.lower() == header[0] for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()

        async def refuse(code: int, kind: str, error: str, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
            self.telemetry.errors.labels(endpoint, kind).inc()
            body = envelope(error, version)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra]
            await sending({"type": "http.response.start", "status": code, "headers": headers})
            await sending({"type": "http.response.body", "body": body})

        try:
            refusal = self._admit(scope, path)
            if refusal is not None:
                await refuse(*refusal)
                return
            if path in WORK:
                if self.in_flight >= self.limits.max_in_flight:
                    await refuse(
                        503,
                        "overloaded",
                        f"the service is handling {self.in_flight} requests, its limit: try again shortly",
                        [(b"retry-after", b"1")],
                    )
                    return
                self.in_flight += 1
                state["counted"] = True
                self.telemetry.in_flight.inc()
                # one turn of the event loop before any work: every request already parsed enters
                # and is counted before the first is scored, so the bound sees the backlog
                await asyncio.sleep(0)
            scope.setdefault("state", {})["deadline"] = time.monotonic() + self.limits.timeout_seconds
            try:
                await self.app(scope, receive, sending)
            except Exception:
                log.exception("%s %s failed", scope.get("method"), path)
                if not state["started"]:  # a started answer cannot be replaced
                    await refuse(500, "internal", "internal error: the service logged it; the request was not served")
        finally:
            finish()  # no answer finished (a client gone, an answer cut short): still counted once

    def _admit(self, scope: dict[str, Any], path: str) -> tuple[int, str, str, list[tuple[bytes, bytes]]] | None:
        """The refusal (status, kind, message, headers) for a request that may not go on, else None."""
        if path in OPEN:
            return None
        keys = self.keys()
        if keys is not None:
            headers = {name.lower(): value for name, value in scope.get("headers", [])}
            presented = KeyRing.from_header(_text(headers.get(b"authorization")), _text(headers.get(b"x-api-key")))
            key = keys.authenticate(presented)
            challenge = [(b"www-authenticate", b'Bearer realm="reprotab"')]
            if key is None:
                said = "no API key" if presented is None else "an unknown API key"
                return 401, "unauthorized", f"{said}: send `Authorization: Bearer <key>`", challenge
            scope_needed = SCOPE_OF.get(path, "read")
            if not key.allows(scope_needed):
                return 403, "forbidden", f"key '{key.name}' lacks the '{scope_needed}' scope this path needs", []
            scope.setdefault("state", {})["key"] = key.name
            if self.buckets is not None:
                wait = self.buckets.take(key.name)
                if wait > 0:
                    retry = str(max(1, math.ceil(wait))).encode()
                    rate = self.limits.rate_per_second
                    return (
                        429,
                        "rate_limited",
                        f"more than {rate:g} requests a second: retry later",
                        [(b"retry-after", retry)],
                    )
        return None


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None
