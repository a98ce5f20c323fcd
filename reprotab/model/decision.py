"""How probabilities become decisions: probability calibration and the binary decision threshold.

Both are fitted by train on the validation split (never the training rows the model has
already seen, never the test split, which only evaluate reads). `fit_decision` returns them and
train builds the model with them once, so evaluate and every prediction apply exactly what
was chosen.

`fit_calibrator` fits the `Calibrator` (reprotab/model/calibration.py: one-vs-rest, sigmoid or
isotonic, kept as numbers so the model file stores it as JSON); `best_threshold` chooses the
threshold from confusion counts at every candidate at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from reprotab.errors import UserError, problem
from reprotab.model.calibration import DEFAULT_THRESHOLD, Calibrator
from reprotab.model.schema import Schema
from reprotab.params.sections import TrainParams
from reprotab.stats.metrics import CLASSIFICATION, Scored

log = logging.getLogger(__name__)


def fit_calibrator(*, method: str, proba: np.ndarray, y: np.ndarray) -> Calibrator | None:
    """A calibrator fitted on held-out probabilities, or None for `none`."""
    if method == "none":
        return None
    present = np.unique(y)
    if len(present) < proba.shape[1]:
        raise UserError(
            problem(
                "train.calibration",
                "needs every class in the validation split",
                f"{len(present)} of {proba.shape[1]} classes",
                "Use a larger prepare.validation_size, or train.calibration: none",
            )
        )
    return Calibrator(method).fit(proba, y)


def _ratio(numerator: np.ndarray, denominator: np.ndarray | int) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    denominator = np.broadcast_to(np.asarray(denominator, dtype=float), numerator.shape)
    return np.divide(numerator, denominator, out=np.zeros(numerator.shape), where=denominator > 0)


def _balanced_accuracy(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, tn: np.ndarray) -> np.ndarray:
    """The mean recall of the classes present (scikit-learn's: a class without rows is left out)."""
    recalls = [
        _ratio(hits, hits + misses) for hits, misses in ((tp, fn), (tn, fp)) if (hits + misses).max(initial=0) > 0
    ]
    return np.mean(recalls, axis=0) if recalls else np.zeros(tp.shape)


# Each threshold metric from the confusion counts at every candidate threshold at once (arrays of
# true/false positives and negatives), the formulas scikit-learn uses; keys are params.THRESHOLD_METRICS.
FROM_COUNTS = {
    "f1": lambda tp, fp, fn, tn: _ratio(2 * tp, 2 * tp + fp + fn),
    "precision": lambda tp, fp, fn, tn: _ratio(tp, tp + fp),
    "recall": lambda tp, fp, fn, tn: _ratio(tp, tp + fn),
    "accuracy": lambda tp, fp, fn, tn: (tp + tn) / (tp + fp + fn + tn),
    "balanced_accuracy": _balanced_accuracy,
}


def confusion_at(
    thresholds: np.ndarray, positive_proba: np.ndarray, is_positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """True/false positives and negatives of `proba >= threshold` for every threshold, from one
    sort of the rows (scoring each threshold separately took minutes at a million rows)."""
    ranking = np.where(np.isnan(positive_proba), -np.inf, positive_proba)  # NaN is never >= a threshold
    order = np.argsort(ranking, kind="stable")
    ranked, hits = ranking[order], is_positive[order].astype(np.int64)
    below = np.searchsorted(ranked, thresholds, side="left")  # rows under each threshold
    hits_below = np.concatenate([[0], np.cumsum(hits)])[below]
    positives, rows = int(hits.sum()), len(ranked)
    tp = (positives - hits_below).astype(float)
    fp = (rows - below) - tp
    fn = positives - tp
    tn = (rows - positives) - fp
    return tp, fp, fn, tn


def best_threshold(
    *,
    positive_proba: np.ndarray,
    is_positive: np.ndarray,
    metric: str,
    min_recall: float | None = None,
    min_precision: float | None = None,
) -> tuple[float, float]:
    """The threshold (and its score) that maximizes `metric` on held-out rows, optionally among
    thresholds that keep recall or precision at least a floor. Candidates are the distinct
    probabilities (at most 512 quantiles of them), so the result is one a real row sits on; the
    first (lowest) of equally good thresholds wins."""
    candidates = np.unique(positive_proba)
    if len(candidates) > 512:
        candidates = np.unique(np.quantile(positive_proba, np.linspace(0, 1, 512)))
    counts = confusion_at(candidates, np.asarray(positive_proba), np.asarray(is_positive))
    scores = FROM_COUNTS[metric](*counts)
    allowed = np.ones(len(candidates), dtype=bool)
    if min_recall is not None:
        allowed &= FROM_COUNTS["recall"](*counts) >= min_recall
    if min_precision is not None:
        allowed &= FROM_COUNTS["precision"](*counts) >= min_precision
    if not allowed.any():
        floor = f"recall ≥ {min_recall}" if min_recall is not None else f"precision ≥ {min_precision}"
        raise UserError(
            problem(
                "train.threshold",
                f"no threshold reaches {floor} on the validation split",
                None,
                "Lower train.min_recall / train.min_precision, or set a number as train.threshold",
            )
        )
    best = int(np.argmax(np.where(allowed, scores, -np.inf)))
    return float(candidates[best]), float(scores[best])


def fit_decision(
    *, schema: Schema, proba: np.ndarray, y: np.ndarray, settings: TrainParams
) -> tuple[float | None, Calibrator | None, dict[str, Any]]:
    """Fit the calibrator and choose the binary threshold on held-out rows.

    `proba` is the estimator's own probabilities on those rows. Returns (threshold, calibrator,
    summary); the caller builds the model with them (the threshold is None when none applies)."""
    calibrator = fit_calibrator(method=settings.calibration, proba=proba, y=y)
    calibrated = calibrator.transform(proba) if calibrator is not None else proba
    calibrated = calibrated.round(10)  # multi-threaded forests differ in the last float digit between runs
    summary: dict[str, Any] = {"calibration": settings.calibration}
    if len(schema.classes) != 2:
        if settings.threshold not in (None, "auto"):
            log.info("train.threshold applies to binary targets; ignored for %d classes", len(schema.classes))
        return None, calibrator, summary
    positive = list(schema.classes).index(schema.positive_class)
    is_positive = (y == positive).astype(int)
    threshold: float | None
    if settings.threshold == "auto":
        threshold, _ = best_threshold(
            positive_proba=calibrated[:, positive],
            is_positive=is_positive,
            metric=settings.threshold_metric,
            min_recall=settings.min_recall,
            min_precision=settings.min_precision,
        )
    else:
        threshold = settings.threshold
    chosen = DEFAULT_THRESHOLD if threshold is None else threshold
    metric = CLASSIFICATION[settings.threshold_metric]
    two = np.column_stack([1 - is_positive, is_positive])
    at = {
        label: round(float(metric(Scored(is_positive, (calibrated[:, positive] >= t).astype(int), two, 1))), 6)
        for label, t in (("at_0.5", DEFAULT_THRESHOLD), ("at_threshold", chosen))
    }
    log.info(
        "threshold %.4f (%s); validation %s %.4f at 0.5 → %.4f at the threshold",
        chosen,
        settings.threshold,
        settings.threshold_metric,
        at["at_0.5"],
        at["at_threshold"],
    )
    summary.update(
        {
            "threshold": round(chosen, 6),
            "threshold_metric": settings.threshold_metric,
            f"validation_{settings.threshold_metric}_at_0.5": at["at_0.5"],
            f"validation_{settings.threshold_metric}_at_threshold": at["at_threshold"],
        }
    )
    return threshold, calibrator, summary
