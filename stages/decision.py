"""How probabilities become decisions: probability calibration and the binary decision threshold.

Both are fitted by train on the validation split (never the training rows the model has
already seen, never the test split, which only evaluate reads) and stored in the model, so
evaluate and every prediction apply exactly what was chosen.

`Calibrator` is one-vs-rest: binary models calibrate the positive class; multiclass models
calibrate each class and renormalize rows to sum to 1. `sigmoid` (Platt scaling on the
log-odds) suits small validation sets; `isotonic` is more flexible but needs more rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from stages.errors import UserError, problem
from stages.metrics import CLASSIFICATION, Scored

EPSILON = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p)).reshape(-1, 1)


class Calibrator:
    """Maps a model's class probabilities to calibrated ones (`transform`), per class."""

    def __init__(self, method: str) -> None:
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(method)
        self.method, self.models_, self.binary_ = method, [], False

    def fit(self, proba: np.ndarray, y: np.ndarray) -> Calibrator:
        self.binary_ = proba.shape[1] == 2
        columns = [1] if self.binary_ else range(proba.shape[1])
        self.models_ = [self._fit_one(proba[:, k], (y == k).astype(int)) for k in columns]
        return self

    def _fit_one(self, p: np.ndarray, hit: np.ndarray) -> Any:
        if self.method == "isotonic":
            return IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p, hit)
        return LogisticRegression(C=1e6).fit(_logit(p), hit)

    def _apply(self, model: Any, p: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return model.predict(p)
        return model.predict_proba(_logit(p))[:, 1]

    def transform(self, proba: np.ndarray) -> np.ndarray:
        if self.binary_:
            positive = self._apply(self.models_[0], proba[:, 1])
            return np.column_stack([1 - positive, positive])
        out = np.column_stack([self._apply(m, proba[:, k]) for k, m in enumerate(self.models_)])
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1), 1 / out.shape[1])


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
    probabilities (at most 512 quantiles of them), so the result is one a real row sits on."""
    candidates = np.unique(positive_proba)
    if len(candidates) > 512:
        candidates = np.unique(np.quantile(positive_proba, np.linspace(0, 1, 512)))
    truth = is_positive.astype(int)
    two_columns = np.column_stack([1 - positive_proba, positive_proba])  # marks the problem as binary
    best: tuple[float, float] | None = None
    for threshold in candidates:
        predicted = (positive_proba >= threshold).astype(int)
        hits = int((predicted & truth).sum())
        recall = hits / max(int(truth.sum()), 1)
        precision = hits / max(int(predicted.sum()), 1)
        too_low = (min_recall is not None and recall < min_recall) or (
            min_precision is not None and precision < min_precision
        )
        if too_low:
            continue
        score = float(CLASSIFICATION[metric](Scored(y_true=truth, y_pred=predicted, proba=two_columns, positive=1)))
        if best is None or score > best[1]:
            best = (float(threshold), score)
    if best is None:
        floor = f"recall ≥ {min_recall}" if min_recall is not None else f"precision ≥ {min_precision}"
        raise UserError(
            problem(
                "train.threshold",
                f"no threshold reaches {floor} on the validation split",
                None,
                "Lower train.min_recall / train.min_precision, or set a number as train.threshold",
            )
        )
    return best
