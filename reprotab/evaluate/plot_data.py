"""The evaluation report's plot data: pure functions from labels and probabilities to frames.

Each frame is what one dvclive plot file holds (`reports/evaluate/plots/custom/<name>.json`,
declared in dvc.yaml's top-level `plots`, so `dvc plots diff` overlays experiments).

- Multiclass curves are one-vs-rest; the dvclive ROC and precision-recall files hold their
  macro average (classes weigh the same, as in the macro metrics), so `dvc plots diff` draws
  one line per experiment.
- Calibration: binary models show the positive class, multiclass models the top-label
  confidence (the predicted class's probability against how often it is right). Points are
  bins of equal row counts, so the sparse high-probability end of an imbalanced problem still
  gets reliable points.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

MAX_CURVE_POINTS = 500


def confusion_records(actual: Iterable[Any], predicted: Iterable[Any]) -> pd.DataFrame:
    """One row per prediction, labels as text: the form DVC's confusion templates count."""
    return pd.DataFrame({"actual": [str(a) for a in actual], "predicted": [str(p) for p in predicted]})


def confusion_table(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], *, normalized: bool) -> pd.DataFrame:
    """Counts (or shares of each true class, rows summing to 1) with true classes as rows."""
    matrix = skm.confusion_matrix(y_true, y_pred, labels=range(len(labels)), normalize="true" if normalized else None)
    return pd.DataFrame(matrix, index=pd.Index(labels, name="actual"), columns=pd.Index(labels, name="predicted"))


def one_vs_rest(
    y_true: np.ndarray, proba: np.ndarray, *, labels: list[str], positive: int | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Curves to draw as {name: (is_hit, score)}: the positive class for binary models, each
    class against the rest for multiclass."""
    if positive is not None:
        return {labels[positive]: (y_true == positive, proba[:, positive])}
    return {label: (y_true == k, proba[:, k]) for k, label in enumerate(labels)}


def _thresholds(values: np.ndarray) -> list[float | None]:
    return [round(float(t), 6) if np.isfinite(t) else None for t in values]


def thin(frame: pd.DataFrame, max_points: int = MAX_CURVE_POINTS) -> pd.DataFrame:
    """At most `max_points` evenly spaced rows, first and last kept: enough to draw a curve,
    small enough that plot files stay light (a precision-recall curve has a point per row)."""
    if len(frame) <= max_points:
        return frame
    keep = np.unique(np.linspace(0, len(frame) - 1, max_points).round().astype(int))
    return frame.iloc[keep].reset_index(drop=True)


def roc_frame(hit: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    fpr, tpr, thresholds = skm.roc_curve(hit, score)
    return thin(pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6), "threshold": _thresholds(thresholds)}))


def precision_recall_frame(hit: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    precision, recall, thresholds = skm.precision_recall_curve(hit, score)
    return thin(
        pd.DataFrame(
            {"recall": recall.round(6), "precision": precision.round(6), "threshold": [*_thresholds(thresholds), None]}
        )
    )


def macro_roc(frames: Iterable[pd.DataFrame], points: int = 201) -> pd.DataFrame:
    """Mean true positive rate of per-class ROC curves on a common false positive rate grid
    (what the macro ROC-AUC metric averages)."""
    grid = np.linspace(0, 1, points)
    tpr = np.mean([np.interp(grid, f["fpr"], f["tpr"]) for f in frames], axis=0)
    return pd.DataFrame({"fpr": grid.round(6), "tpr": tpr.round(6)})


def macro_precision_recall(frames: Iterable[pd.DataFrame], points: int = 201) -> pd.DataFrame:
    """Mean interpolated precision (the best precision at this recall or above) of per-class
    precision-recall curves on a common recall grid."""
    grid, curves = np.linspace(0, 1, points), []
    for frame in frames:
        ordered = frame.sort_values("recall", kind="stable")
        recall, precision = ordered["recall"].to_numpy(), ordered["precision"].to_numpy()
        best_beyond = np.maximum.accumulate(precision[::-1])[::-1]
        at = np.minimum(np.searchsorted(recall, grid, side="left"), len(recall) - 1)
        curves.append(best_beyond[at])
    return pd.DataFrame({"recall": grid.round(6), "precision": np.mean(curves, axis=0).round(6)})


def calibration_frame(hit: np.ndarray, score: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Reliability curve: rows sorted by predicted probability and cut into `bins` groups of
    (nearly) equal size; each point is a group's mean prediction and its observed hit rate."""
    order = np.argsort(score, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    return pd.DataFrame(
        {
            "prob_pred": [round(float(score[g].mean()), 6) for g in groups],
            "prob_true": [round(float(np.mean(hit[g])), 6) for g in groups],
            "count": [len(g) for g in groups],
        }
    )


def calibration_target(y_true: np.ndarray, proba: np.ndarray, positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(is_hit, probability): the positive class for binary, top-label confidence for multiclass."""
    if positive is not None:
        return y_true == positive, proba[:, positive]
    return proba.argmax(axis=1) == y_true, proba.max(axis=1)


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> pd.DataFrame:
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(len(labels)), zero_division=0
    )
    return pd.DataFrame(
        {
            "class": labels,
            "precision": precision.round(6),
            "recall": recall.round(6),
            "f1": f1.round(6),
            "support": support.astype(int),
        }
    )


def per_class_records(table: pd.DataFrame) -> pd.DataFrame:
    """Long form for one bar per class and metric ('north f1')."""
    long = table.melt(id_vars="class", value_vars=["precision", "recall", "f1"], var_name="metric")
    return long.assign(label=long["class"] + " " + long["metric"])[["label", "class", "metric", "value"]]


def regression_frame(actual: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    return pd.DataFrame(
        {"actual": actual.round(6), "predicted": predicted.round(6), "residual": (actual - predicted).round(6)}
    )


def operating_points(hit: np.ndarray, score: np.ndarray, thresholds: dict[str, float]) -> pd.DataFrame:
    """Where the given thresholds sit on the ROC and precision-recall curves."""
    rows = []
    for name, threshold in thresholds.items():
        predicted = score >= threshold
        tp, fp = int(np.sum(predicted & hit)), int(np.sum(predicted & ~hit))
        positives, negatives = int(hit.sum()), int((~hit).sum())
        rows.append(
            {
                "name": name,
                "threshold": threshold,
                "fpr": fp / max(negatives, 1),
                "tpr": tp / max(positives, 1),
                "precision": tp / max(tp + fp, 1),
                "recall": tp / max(positives, 1),
            }
        )
    return pd.DataFrame(rows)
