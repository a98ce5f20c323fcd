"""What the service (reprotab/serving/service.py) does with one request once it is parsed: which
model answers it (`route_of`: champion or canary), cleaning its rows by the policy for incoming
rows, scoring them, logging every prediction (and the shadow model's, after the answer is sent),
and the answer's body. The app's wiring (endpoints, limits, metrics, start-up) stays in service.py.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from reprotab.data.incoming import MIN_SHARE, CleanedRows, NotNumbers, clean_rows, log_notes
from reprotab.model.served import TabularModel
from reprotab.serving.payload import ApiError, entry
from reprotab.serving.prediction_log import PredictionLog, record
from reprotab.serving.scoring import score
from reprotab.serving.telemetry import Telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """A loaded model and what identifies it (version, stage, commit, path)."""

    model: TabularModel
    info: dict[str, Any]
    gate: dict[str, Any] | None = None  # the gate's decision about this very model, when one is known

    @property
    def version(self) -> str:
        return str(self.info["version"])


def route_of(request_id: str, share: float) -> str:
    """canary for a deterministic `share` of request ids, else champion."""
    if share <= 0:
        return "champion"
    bucket = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return "canary" if bucket < share else "champion"


def cleaned_rows(rows: list[dict[str, Any]], model: TabularModel, *, where: str) -> CleanedRows:
    """The request's rows cleaned by the policy for incoming rows (reprotab/data/incoming.py); a numeric
    field where too few of the request's values are numbers is a 422 naming each such row."""
    try:
        return clean_rows(rows, model.schema, known=model.plan.learned, where=where)
    except NotNumbers as exc:
        bad = sorted((row, model.schema.features.index(c), c) for c, found in exc.rows.items() for row in found)
        detail = [
            entry(
                row,
                c,
                f"{rows[row][c]!r} is not a number, and only {exc.notes[c].share:.0%} of this request's values of "
                f"this feature are (at least {MIN_SHARE:.0%} must be)",
            )
            for row, _, c in bad
        ]
        raise ApiError(422, detail, "validation") from None


def scored(served: Served, cleaned: CleanedRows) -> tuple[list[Any], list[dict[str, float]] | None]:
    """Predictions and probabilities of every row, or a 422 naming the rows the model refused."""
    model = served.model
    with np.errstate(over="ignore", invalid="ignore"):
        result = score(model, model.plan.matrix(cleaned.numbers, cleaned.levels, cleaned.n))
    if result.failed:
        raise ApiError(422, [entry(row, None, f"cannot be scored: {why}") for row, why in result.failed], "scoring")
    predictions = result.predictions.tolist()
    if result.proba is None:
        return predictions, None
    classes = [str(c) for c in model.schema.classes]
    return predictions, [dict(zip(classes, p, strict=True)) for p in result.proba.tolist()]


def positive_scores(served: Served, probas: list[dict[str, float]] | None) -> list[float] | None:
    """Each row's probability of the positive class (binary models only): the distribution the
    dashboards watch for shift."""
    positive = served.model.schema.positive_class
    if probas is None or positive is None or len(served.model.schema.classes) != 2:
        return None
    return [p[str(positive)] for p in probas]


def warm(served: Served) -> None:
    """Score one row of missing values through the whole path, so the first request does not pay
    for the booster's and NumPy's first-call set-up."""
    row = {name: None for name in served.model.schema.features}
    scored(served, clean_rows([row], served.model.schema, known=served.model.plan.learned, where="warm-up"))


def serve_rows(
    served: Served,
    rows: list[dict[str, Any]],
    request_id: str,
    route: str,
    prediction_log: PredictionLog,
    telemetry: Telemetry,
) -> tuple[CleanedRows, dict[str, Any], Callable[[], None]]:
    """Clean and score `rows`, and build the answer and the writing of its prediction log lines,
    which the caller runs before answering (small requests) or just after (large ones)."""
    cleaned = cleaned_rows(rows, served.model, where=f"request {request_id}")
    log_notes(cleaned.notes, where=f"request {request_id}")
    predictions, probas = scored(served, cleaned)
    log_lines = functools.partial(write_log, prediction_log, served, rows, request_id, route, predictions, probas)
    telemetry.predicted(route, np.asarray(predictions, dtype=object), positive_scores(served, probas))
    id_column = served.model.schema.id_column
    answers = [
        {
            **({"id": rows[i][id_column]} if id_column and id_column in rows[i] else {}),
            "prediction": p,
            "proba": probas[i] if probas else None,
        }
        for i, p in enumerate(predictions)
    ]
    reply = {"request_id": request_id, "model_version": served.version, "route": route, "predictions": answers}
    return cleaned, {**reply, "cleaning": cleaned.changes()}, log_lines


def shadow_rows(
    served: Served,
    cleaned: CleanedRows,
    rows: list[dict[str, Any]],
    request_id: str,
    prediction_log: PredictionLog,
    telemetry: Telemetry,
) -> None:
    """The shadow challenger's predictions, logged only; its failures never reach the client."""
    try:
        predictions, probas = scored(served, cleaned)
    except ApiError as exc:
        telemetry.errors.labels("/predict", "shadow").inc()
        log.warning("shadow model %s could not score request %s: %s", served.version, request_id, exc.detail)
        return
    write_log(prediction_log, served, rows, request_id, "shadow", predictions, probas)
    telemetry.predicted("shadow", np.asarray(predictions, dtype=object), positive_scores(served, probas))


def write_log(
    prediction_log: PredictionLog,
    served: Served,
    rows: list[dict[str, Any]],
    request_id: str,
    route: str,
    predictions: list[Any],
    probas: list[dict[str, float]] | None,
) -> None:
    now = datetime.now(UTC)
    id_column = served.model.schema.id_column
    prediction_log.write(
        record(
            time=now,
            request_id=request_id,
            route=route,
            version=served.version,
            row_id=row.get(id_column) if id_column else None,
            features={k: v for k, v in row.items() if k != id_column},
            prediction=predictions[i],
            proba=probas[i] if probas else None,
        )
        for i, row in enumerate(rows)
    )
