"""The bootstrap engine: resamples as row counts, and every metric of reprotab/stats/metrics.py
computed under such counts for a block of resamples at once.

A bootstrap resample of n rows is a vector of counts (how often each row was drawn), so every
metric of a resample is the metric with those counts as row weights. Weighted, every metric in
`BY_TASK` is a handful of matrix products over a (resamples × rows) count matrix: label metrics
from weighted confusion matrices, log-loss/Brier/errors as weighted means, ROC-AUC and average
precision from weighted counts of positives and negatives at each distinct score. `weighted`
equals the sklearn metric on the rows repeated by their counts (tests/unit/stats/test_resample.py
checks every metric), and 500 resamples of 50,000 rows take about a second where calling
scikit-learn 500 times takes a minute.

Two callers sit on top: the monitor's interval of one model's metric (reprotab/stats/bootstrap.py)
and, here, the gate's `paired_bootstrap`, which draws the counts once and scores both models with
them, so each resample compares the two on the same rows: the spread of the difference is what
the gate trusts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from scipy import sparse

from reprotab.stats.metrics import LOWER_IS_BETTER, Scored

CELLS = 4_000_000  # counts per block of resamples (32 MB of float64)


def resample_counts(rng: np.random.Generator, resamples: int, rows: int) -> np.ndarray:
    """(resamples × rows) counts of rows drawn with replacement, `rows` draws per resample."""
    drawn = rng.integers(0, rows, size=(resamples, rows)) + np.arange(resamples)[:, None] * rows
    return np.bincount(drawn.ravel(), minlength=resamples * rows).reshape(resamples, rows).astype(float)


def count_blocks(rows: int, *, samples: int, seed: int) -> Iterator[np.ndarray]:
    """`samples` seeded resamples of `rows` rows, in blocks of at most `CELLS` counts. The draws
    do not depend on the block size: the same seed gives the same resamples however they are cut."""
    rng = np.random.default_rng(seed)
    chunk = max(1, CELLS // max(rows, 1))
    for start in range(0, samples, chunk):
        yield resample_counts(rng, min(chunk, samples - start), rows)


def _safe(num: np.ndarray, den: np.ndarray, empty: float = 0.0) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, empty, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _counts(s: Scored, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted true positives, predicted and true counts per class, (B, K) each, from one product
    of the weights with each row's (true, predicted) cell of the confusion matrix."""
    k = s.proba.shape[1] if s.proba is not None else int(max(s.y_true.max(), s.y_pred.max())) + 1
    cell = np.zeros((len(s.y_true), k * k))
    cell[np.arange(len(s.y_true)), s.y_true.astype(int) * k + s.y_pred.astype(int)] = 1
    confusion = (w @ cell).reshape(len(w), k, k)  # (resample, true, predicted)
    return np.diagonal(confusion, axis1=1, axis2=2), confusion.sum(axis=1), confusion.sum(axis=2)


def _label_metric(name: str, s: Scored, w: np.ndarray) -> np.ndarray:
    tp, pred, true = _counts(s, w)
    if name == "balanced_accuracy":
        recall = _safe(tp, true, np.nan)
        return np.nanmean(np.where(true > 0, recall, np.nan), axis=1)
    per_class = {
        "precision": _safe(tp, pred),
        "recall": _safe(tp, true),
        "f1": _safe(2 * tp, pred + true),
    }[name]
    if s.binary:
        return per_class[:, s.positive_index()]
    present = (true > 0) | (pred > 0)  # sklearn's macro average runs over labels seen in truth or prediction
    return np.nanmean(np.where(present, per_class, np.nan), axis=1)


def _groups(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positives and negatives at each distinct score, ascending: (B, G) each; one sparse
    product (rows → their score group, positives and negatives side by side) instead of a gather."""
    distinct, group = np.unique(score, return_inverse=True)
    count = len(distinct)
    rows = len(score)
    onehot = sparse.csr_matrix((np.ones(rows), (np.arange(rows), group + count * ~positive)), shape=(rows, 2 * count))
    both = np.asarray((onehot.T @ w.T).T)
    return both[:, :count], both[:, count:]


def _auc(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    pos, neg = _groups(score, positive, w)
    below = np.cumsum(neg, axis=1) - neg  # negatives scored strictly lower; ties count half
    return _safe((pos * (below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1), np.nan)


def _average_precision(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    pos, neg = _groups(score, positive, w)
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # thresholds from the highest score down
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    return _safe((pos * _safe(tp, tp + fp)).sum(axis=1), pos.sum(axis=1), np.nan)


def _ranking(function: Callable[..., np.ndarray]) -> Callable[[Scored, np.ndarray], np.ndarray]:
    """Binary: the positive class's curve. Multiclass: the mean of one-vs-rest over the classes
    drawn (a class missing from a resample has no curve and is left out of that resample's mean)."""

    def metric(s: Scored, w: np.ndarray) -> np.ndarray:
        proba = s.probabilities()
        if s.binary:
            positive = s.positive_index()
            return function(proba[:, positive], s.y_true == positive, w)
        per_class = np.array([function(proba[:, k], s.y_true == k, w) for k in range(proba.shape[1])])
        return _safe(np.nansum(per_class, axis=0), (~np.isnan(per_class)).sum(axis=0), np.nan)  # NaN: none drawn

    return metric


def _row_losses(name: str, s: Scored) -> np.ndarray:
    """Per-row loss whose weighted mean is the metric."""
    if name == "log_loss":
        proba = s.probabilities() / s.probabilities().sum(axis=1, keepdims=True)
        eps = np.finfo(proba.dtype).eps
        return -np.log(np.clip(proba[np.arange(len(s.y_true)), s.y_true.astype(int)], eps, 1 - eps))
    if name == "brier":
        proba = s.probabilities()
        if s.binary:
            positive = s.positive_index()
            return (proba[:, positive] - (s.y_true == positive)) ** 2
        onehot = s.y_true[:, None] == np.arange(proba.shape[1])
        return ((proba - onehot) ** 2).sum(axis=1)
    error = s.y_pred - s.y_true
    if name in ("rmse", "mse"):
        return error**2
    if name == "mae":
        return np.abs(error)
    if name == "mape":  # rows with a true 0 make MAPE infinite; `weighted` marks those resamples
        return np.abs(error) / np.where(s.y_true == 0, 1, np.abs(s.y_true)) * (s.y_true != 0)
    raise KeyError(name)


def weighted(name: str, s: Scored, w: np.ndarray) -> np.ndarray:
    """Metric `name` of `s` under each row of weights `w` (B × n): one value per resample, NaN where
    the metric is undefined on the rows drawn (ROC-AUC of one class, R² of one value)."""
    w = np.atleast_2d(np.asarray(w, dtype=float))
    total = w.sum(axis=1)
    if name == "accuracy":
        return (w @ (s.y_true == s.y_pred)) / total
    if name in ("precision", "recall", "f1", "balanced_accuracy"):
        return _label_metric(name, s, w)
    if name == "roc_auc":
        return _ranking(_auc)(s, w)
    if name == "pr_auc":
        return _ranking(_average_precision)(s, w)
    if name == "r2":
        y = s.y_true.astype(float)
        residual = w @ (s.y_pred - y) ** 2
        spread = w @ y**2 - (w @ y) ** 2 / total
        return 1 - _safe(residual, spread, np.nan)
    mean = (w @ _row_losses(name, s)) / total
    if name == "mape":
        return np.where(w[:, s.y_true == 0].sum(axis=1) > 0, np.inf, mean)
    return np.sqrt(mean) if name == "rmse" else mean


def improvement(metric: str, challenger: np.ndarray | float, champion: np.ndarray | float) -> np.ndarray:
    """How much better the challenger is, positive when better, in the metric's own units."""
    diff = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    return -diff if metric in LOWER_IS_BETTER else diff


def paired_bootstrap(
    metric: str, challenger: Scored, champion: Scored, *, samples: int, confidence: float, seed: int
) -> dict[str, float]:
    """Percentile interval of the challenger's improvement over the champion, both scored on the
    same resampled rows each time. Resamples where the metric is undefined (a class not drawn) are dropped."""
    gain = np.concatenate(
        [
            improvement(metric, weighted(metric, challenger, w), weighted(metric, champion, w))
            for w in count_blocks(len(challenger.y_true), samples=samples, seed=seed)
        ]
        or [np.empty(0)]
    )
    gain = gain[np.isfinite(gain)]
    if gain.size == 0:
        return {"lower": float("nan"), "upper": float("nan"), "mean": float("nan"), "used": 0}
    alpha = (1 - confidence) / 2
    lower, upper = np.quantile(gain, [alpha, 1 - alpha])
    return {"lower": float(lower), "upper": float(upper), "mean": float(gain.mean()), "used": int(gain.size)}
