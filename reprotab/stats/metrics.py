"""Metrics by task, from one table so the names in params (`metric:`) and in reports agree.

Classification metrics take class indices and probabilities. Binary ones score the positive
class; multiclass ones are macro averages (every class counts the same, which is what an
imbalanced problem needs), with ROC-AUC one-vs-rest. Brier score and log-loss judge the
probabilities themselves (lower is better; multiclass Brier sums over classes). MAPE is a
fraction (0.1 = 10 %), undefined when a true value is 0, so such rows make it infinite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


def _skm() -> Any:
    """scikit-learn's metrics module, imported at the first score, not with this module: the params schema
    reads the metric names from this registry, and a stage that never scores (tune without a
    search) need not load scikit-learn and SciPy for them."""
    from sklearn import metrics

    return metrics


@dataclass(frozen=True)
class Scored:
    """What a metric sees: true and predicted labels (or values), probabilities, positive index."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray | None = None
    positive: int | None = None

    @property
    def binary(self) -> bool:
        return self.proba is not None and self.proba.shape[1] == 2

    @property
    def average(self) -> str:
        return "binary" if self.binary else "macro"

    def probabilities(self) -> np.ndarray:
        """`proba`, which a probability metric cannot score without."""
        if self.proba is None:
            raise TypeError("class probabilities are needed here, and none were given (Scored.proba is None)")
        return self.proba

    def positive_index(self) -> int:
        """`positive`, the class a binary metric scores."""
        if self.positive is None:
            raise TypeError("the positive class is needed here, and none was given (Scored.positive is None)")
        return self.positive


def binary_roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic over average ranks (ties count half): the same value
    as scikit-learn's `roc_auc_score`, without its input checks, which dominate the many small calls
    of permutation importance and the bootstraps. One class only: scikit-learn's own error."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return _skm().roc_auc_score(positive, score)
    from scipy.stats import rankdata

    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary(s: Scored) -> tuple[np.ndarray, np.ndarray]:
    """(whether each row is of the positive class, the positive class's probability) of a binary problem."""
    positive = s.positive_index()
    return s.y_true == positive, s.probabilities()[:, positive]


def _roc_auc(s: Scored) -> float:
    if s.binary:
        return binary_roc_auc(*_binary(s))
    proba = s.probabilities()
    return _skm().roc_auc_score(s.y_true, proba, multi_class="ovr", average="macro", labels=range(proba.shape[1]))


def _pr_auc(s: Scored) -> float:
    if s.binary:
        return _skm().average_precision_score(*_binary(s))
    from sklearn.preprocessing import label_binarize

    proba = s.probabilities()
    onehot = label_binarize(s.y_true, classes=range(proba.shape[1]))
    return _skm().average_precision_score(onehot, proba, average="macro")


def _with_average(name: str) -> Callable[[Scored], float]:
    """scikit-learn's metric `name` with the project's averaging (binary: the positive class)."""

    def score(s: Scored) -> float:
        kwargs = {"pos_label": s.positive} if s.binary else {}
        return getattr(_skm(), name)(s.y_true, s.y_pred, average=s.average, zero_division=0, **kwargs)

    return score


def _rows_sum_to_one(proba: np.ndarray) -> np.ndarray:
    """XGBoost's float32 probabilities sum to 1 only to float32 precision; once cast to float64,
    scikit-learn's check sees a gap above float64's tolerance and warns on every call."""
    return proba / proba.sum(axis=1, keepdims=True)


def _log_loss(s: Scored) -> float:
    proba = s.probabilities()
    return _skm().log_loss(s.y_true, _rows_sum_to_one(proba), labels=range(proba.shape[1]))


def _brier(s: Scored) -> float:
    if s.binary:
        return _skm().brier_score_loss(*_binary(s))
    proba = s.probabilities()
    return _skm().brier_score_loss(s.y_true, _rows_sum_to_one(proba), labels=range(proba.shape[1]))


def _mape(s: Scored) -> float:
    if np.any(s.y_true == 0):
        return float("inf")
    return _skm().mean_absolute_percentage_error(s.y_true, s.y_pred)


CLASSIFICATION: dict[str, Callable[[Scored], float]] = {
    "roc_auc": _roc_auc,
    "pr_auc": _pr_auc,
    "f1": _with_average("f1_score"),
    "recall": _with_average("recall_score"),
    "precision": _with_average("precision_score"),
    "accuracy": lambda s: _skm().accuracy_score(s.y_true, s.y_pred),
    "balanced_accuracy": lambda s: _skm().balanced_accuracy_score(s.y_true, s.y_pred),
    "log_loss": _log_loss,
    "brier": _brier,
}
REGRESSION: dict[str, Callable[[Scored], float]] = {
    "rmse": lambda s: _skm().root_mean_squared_error(s.y_true, s.y_pred),
    "mae": lambda s: _skm().mean_absolute_error(s.y_true, s.y_pred),
    "r2": lambda s: _skm().r2_score(s.y_true, s.y_pred),
    "mape": _mape,
}
BY_TASK = {"classification": CLASSIFICATION, "regression": REGRESSION}
LOWER_IS_BETTER = {"rmse", "mae", "mape", "log_loss", "brier"}
# Metrics that judge probabilities only; the others depend on the decision threshold.
PROBABILITY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


def better(metric: str, candidate: float, incumbent: float) -> bool:
    """Whether `candidate` beats `incumbent` for this metric's direction."""
    return candidate < incumbent if metric in LOWER_IS_BETTER else candidate > incumbent


def score_all(task: str, scored: Scored) -> dict[str, float]:
    """Every metric of the task, rounded for stable diffs."""
    return {name: round(float(function(scored)), 6) for name, function in BY_TASK[task].items()}


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"test": {"at_0.5": {"f1": x}}} → {"test/at_0.5/f1": x}, the names dvclive logs."""
    flat: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{name}/"))
        else:
            flat[f"{prefix}{name}"] = value
    return flat
