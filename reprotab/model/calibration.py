"""Probability calibration as the served model applies it: numbers only, applied with NumPy.

`Calibrator` is one-vs-rest: binary models calibrate the positive class; multiclass models
calibrate each class and renormalize rows to sum to 1. `sigmoid` (Platt scaling on the
log-odds) suits small validation sets; `isotonic` is more flexible but needs more rows. It is
fitted with scikit-learn by train (reprotab/model/decision.py `fit_calibrator`, on the validation
split) and then kept as numbers (`params_`), so the model bundle stores it as JSON and serving
imports no scikit-learn. `DEFAULT_THRESHOLD` is the binary decision threshold when train chose none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

EPSILON = 1e-6
DEFAULT_THRESHOLD = 0.5


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds as one column (the sigmoid calibrator's input), kept off ±inf."""
    p = np.clip(p, EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p)).reshape(-1, 1)


class Calibrator:
    """Maps a model's class probabilities to calibrated ones (`transform`), per class; `params_`
    holds per class scored the sigmoid's slope and intercept on the log-odds, or the isotonic
    curve's breakpoints."""

    def __init__(self, method: str) -> None:
        if method not in ("sigmoid", "isotonic"):
            raise ValueError(method)
        self.method, self.binary_ = method, False
        self.params_: list[tuple[np.ndarray, np.ndarray]] = []

    def fit(self, proba: np.ndarray, y: np.ndarray) -> Calibrator:
        self.binary_ = proba.shape[1] == 2
        columns = [1] if self.binary_ else range(proba.shape[1])
        self.params_ = [self._fit_one(proba[:, k], (y == k).astype(int)) for k in columns]
        return self

    def _fit_one(self, p: np.ndarray, hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        if self.method == "isotonic":  # kept off exact 0/1 (half a row's worth), which log-loss punishes without end
            floor = 0.5 / len(hit)
            curve = IsotonicRegression(y_min=floor, y_max=1 - floor, out_of_bounds="clip").fit(p, hit)
            return np.asarray(curve.X_thresholds_, dtype=float), np.asarray(curve.y_thresholds_, dtype=float)
        fitted = LogisticRegression(C=1e6).fit(logit(p), hit)
        return np.asarray(fitted.coef_, dtype=float).ravel(), np.asarray(fitted.intercept_, dtype=float).ravel()

    def _apply(self, params: tuple[np.ndarray, np.ndarray], p: np.ndarray) -> np.ndarray:
        first, second = params
        if self.method == "isotonic":  # scikit-learn's clip + linear interpolation between breakpoints
            return np.interp(p, first, second) if len(first) > 1 else np.full(len(p), second[0])
        return np.asarray(expit(logit(p)[:, 0] * first[0] + second[0]), dtype=float)

    def transform(self, proba: np.ndarray) -> np.ndarray:
        if self.binary_:
            positive = self._apply(self.params_[0], proba[:, 1])
            return np.column_stack([1 - positive, positive])
        out = np.column_stack([self._apply(m, proba[:, k]) for k, m in enumerate(self.params_)])
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1), 1 / out.shape[1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "binary": self.binary_,
            "classes": [{"a": a.tolist(), "b": b.tolist()} for a, b in self.params_],
        }

    @classmethod
    def from_dict(cls, raw: Any, *, n_classes: int) -> Calibrator:
        """The calibrator in `raw` (parsed JSON) for a model of `n_classes`; ValueError if malformed."""
        if not isinstance(raw, dict) or set(raw) != {"method", "binary", "classes"}:
            raise ValueError("calibrator must be an object with method, binary and classes")
        if raw["method"] not in ("sigmoid", "isotonic") or raw["binary"] is not (n_classes == 2):
            raise ValueError(f"calibrator method must be sigmoid or isotonic, binary only for 2 classes ({n_classes})")
        parts = raw["classes"]
        if not isinstance(parts, list) or len(parts) != (1 if n_classes == 2 else n_classes):
            raise ValueError("calibrator needs one curve for binary models and one per class otherwise")
        calibrator = cls(raw["method"])
        calibrator.binary_ = raw["binary"]
        for part in parts:
            if not isinstance(part, dict) or set(part) != {"a", "b"}:
                raise ValueError("calibrator curves must be objects with a and b")
            a, b = (_finite(part[key]) for key in ("a", "b"))
            sizes_ok = (
                (len(a) == len(b) >= 1 and bool(np.all(np.diff(a) >= 0)) and bool(np.all((b >= 0) & (b <= 1))))
                if calibrator.method == "isotonic"
                else (len(a) == len(b) == 1)
            )
            if not sizes_ok:
                raise ValueError(
                    "calibrator curve has the wrong shape (isotonic: increasing breakpoints; sigmoid: 1 and 1)"
                )
            calibrator.params_.append((a, b))
        return calibrator


def _finite(raw: Any) -> np.ndarray:
    if not isinstance(raw, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in raw):
        raise ValueError("calibrator values must be lists of numbers")
    values = np.asarray(raw, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("calibrator values must be finite")
    return values
