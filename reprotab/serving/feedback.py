"""`POST /feedback`: outcomes sent back to the service, kept for the canary's verdict and watched live.

    {"labels": [{"id": "C-1042", "label": true},                       by the row's id column, or
                {"request_id": "r-17", "position": 0, "label": false}]} by request and row position

Each label is appended to `<log dir>/feedback/feedback-YYYYMMDD.jsonl` (UTC day; files 0600), one
JSON line `{"time", "id", "request_id", "position", "label", "key"}` (`key`: the API key's name,
never the key): `reprotab labels join` and `reprotab canary decide` read them with the prediction
log. An id the log stores hashed (`serve.log.hash` lists `id`) is stored hashed here too.

The service also remembers its latest `RECENT` predictions by id and by (request id, position),
so a label that arrives while they are remembered is scored at once: the live error per route
(1 - accuracy, or the mean absolute error for regression) over the last `WINDOW` labels is the
`reprotab_live_error` gauge, and with `canary.auto_rollback` the service stops routing to a canary
whose live error passes the champion's by more than `canary.max_worsening`.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from reprotab.model.schema import Schema
from reprotab.serving.payload import ApiError, entry

RECENT = 100_000  # predictions remembered for live scoring
WINDOW = 1_000  # labels per route in the live error
GUARD_MIN_LABELS = 50  # labels each route needs before the live guard may act


def parse_feedback(body: bytes, schema: Schema, max_labels: int) -> list[dict[str, Any]]:
    """The labels of a /feedback body, each {"id", "request_id", "position", "label"}, or one 422
    listing every bad entry."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(422, [entry(None, None, f"malformed JSON: {exc}")], "malformed") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) or set(data) != {"labels"}:
        raise ApiError(
            422, [entry(None, None, 'body must be {"labels": [{"id" or "request_id", "label"}, ...]}')], "malformed"
        )
    labels = data["labels"]
    if not labels:
        raise ApiError(422, [entry(None, "labels", "empty: send at least one label")], "validation")
    if len(labels) > max_labels:
        raise ApiError(
            413, [entry(None, "labels", f"{len(labels)} labels exceed the limit of {max_labels}")], "too_large"
        )
    classes = {str(c): c for c in schema.classes}
    found, errors = [], []
    for i, item in enumerate(labels):
        if not isinstance(item, dict) or "label" not in item or set(item) - {"id", "request_id", "position", "label"}:
            errors.append(entry(i, None, 'must be {"id" or "request_id" (+ "position"), "label"}'))
            continue
        row_id, request_id, position = item.get("id"), item.get("request_id"), item.get("position", 0)
        if row_id is None and request_id is None:
            errors.append(entry(i, "id", "give the row's id or its request_id"))
        elif row_id is not None and (isinstance(row_id, bool) or not isinstance(row_id, str | int)):
            errors.append(entry(i, "id", "must be text or an integer"))
        elif request_id is not None and not isinstance(request_id, str):  # as /predict takes it
            errors.append(entry(i, "request_id", "must be text"))
        elif isinstance(position, bool) or not isinstance(position, int) or position < 0:
            errors.append(entry(i, "position", "must be a row position: 0 or more"))
        label = item["label"]
        if schema.task == "classification":
            if isinstance(label, dict | list) or str(label) not in classes:
                errors.append(entry(i, "label", f"must be one of the model's classes {list(classes)}"))
                continue
            label = classes[str(label)]
        elif isinstance(label, bool) or not isinstance(label, int | float) or not math.isfinite(label):
            errors.append(entry(i, "label", "must be a finite number"))
            continue
        found.append(
            {
                "id": row_id,
                "request_id": None if request_id is None else str(request_id)[:256],
                "position": position,
                "label": label,
            }
        )
    if errors:
        raise ApiError(422, errors, "validation")
    return found


class FeedbackLog:
    """Append-only daily files of labels, 0600, one lock."""

    def __init__(self, directory: str | Path, *, hash_id: Callable[[Any], Any] | None = None) -> None:
        self.directory = Path(directory)
        self.hash_id = hash_id
        self._lock = threading.Lock()

    def write(self, labels: list[dict[str, Any]], *, key: str | None) -> None:
        now = datetime.now(UTC)
        lines = b"".join(
            orjson.dumps(
                {
                    "time": now.isoformat(),
                    **item,
                    "id": self.hash_id(item["id"]) if self.hash_id and item["id"] is not None else item["id"],
                    "key": key,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for item in labels
        )
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = self.directory / f"feedback-{now:%Y%m%d}.jsonl"
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(handle, lines)
            finally:
                os.close(handle)


class LiveScore:
    """Recent predictions by id and by (request id, position), and the live error per route."""

    def __init__(self, task: str) -> None:
        self.task = task
        self._recent: OrderedDict[Any, tuple[str, Any]] = OrderedDict()
        self.errors: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def remember(self, route: str, request_id: str, ids: list[Any], predictions: list[Any]) -> None:
        with self._lock:
            for position, prediction in enumerate(predictions):
                self._recent[(request_id, position)] = (route, prediction)
                if ids and ids[position] is not None:
                    self._recent[("id", str(ids[position]))] = (route, prediction)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def score(self, labels: list[dict[str, Any]]) -> dict[str, int]:
        """Score the labels whose prediction is remembered; the count matched per route."""
        matched: dict[str, int] = {}
        with self._lock:
            for item in labels:
                key = ("id", str(item["id"])) if item["id"] is not None else (item["request_id"], item["position"])
                found = self._recent.get(key)
                if found is None:
                    continue
                route, prediction = found
                if self.task == "classification":
                    error = float(str(prediction) != str(item["label"]))
                else:
                    error = abs(float(prediction) - float(item["label"]))
                self.errors.setdefault(route, deque(maxlen=WINDOW)).append(error)
                matched[route] = matched.get(route, 0) + 1
        return matched

    def error(self, route: str) -> float | None:
        window = self.errors.get(route)
        return sum(window) / len(window) if window else None

    def guard(self, max_worsening: float | None, min_labels: int) -> str | None:
        """Why the canary should stop (its live error passes the champion's by more than
        `max_worsening`, with enough labels on both routes), else None."""
        need = min(GUARD_MIN_LABELS, min_labels)
        if max_worsening is None or any(len(self.errors.get(r, ())) < need for r in ("champion", "canary")):
            return None
        canary, champion = self.error("canary"), self.error("champion")
        assert canary is not None and champion is not None
        if canary - champion > max_worsening:
            what = "error rate" if self.task == "classification" else "mean absolute error"
            return (
                f"live {what} {canary:.4f} on {len(self.errors['canary'])} labels vs the champion's {champion:.4f} "
                f"on {len(self.errors['champion'])}: worse by more than canary.max_worsening ({max_worsening})"
            )
        return None
