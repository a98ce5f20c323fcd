"""The monitor's seeded bootstrap interval of one metric of a batch, on the engine of
reprotab/stats/resample.py."""

from __future__ import annotations

import math

import numpy as np

from reprotab.stats.metrics import Scored
from reprotab.stats.resample import count_blocks, weighted


def interval(scored: Scored, *, metric: str, task: str, samples: int, seed: int) -> list[float] | None:
    """Percentile 95% interval of `metric` over `samples` seeded resamples; None without samples
    (or when no resample could be scored, e.g. one class only). `task` names the metric's table
    (reprotab/stats/metrics.py); the engine knows each metric by its name."""
    if samples <= 0 or not len(scored.y_true):
        return None
    if metric == "mape" and np.any(scored.y_true == 0):
        # the batch's MAPE is infinite, so the monitor counts every resample's as infinite: the
        # percentiles of infinities are NaN
        return [math.nan, math.nan]
    if scored.binary and metric in ("roc_auc", "pr_auc"):
        # the monitor draws its resamples over the rows in score order (descending for PR-AUC): a
        # seed's counts land on the same rows, so a seed keeps giving the same interval
        proba = scored.probabilities()
        score = proba[:, scored.positive_index()]
        order = np.argsort(-score if metric == "pr_auc" else score, kind="stable")
        scored = Scored(scored.y_true[order], scored.y_pred[order], proba[order], scored.positive)
    # A multiclass resample that misses a class has no one-vs-rest curve for it (scikit-learn refuses
    # it): the monitor drops the resample rather than average the classes drawn.
    every_class = task == "classification" and not scored.binary and metric in ("roc_auc", "pr_auc")
    truth = scored.y_true[:, None] == np.arange(scored.probabilities().shape[1]) if every_class else None
    values = []
    for w in count_blocks(len(scored.y_true), samples=samples, seed=seed):
        value = weighted(metric, scored, w)
        values.append(np.where((w @ truth).min(axis=1) > 0, value, np.nan) if every_class else value)
    drawn = np.concatenate(values)
    drawn = drawn[np.isfinite(drawn)]
    if not len(drawn):
        return None
    return [round(float(v), 6) for v in np.percentile(drawn, [2.5, 97.5])]
