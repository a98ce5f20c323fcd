"""The evaluation report: which plot data, figures and tables each kind of model gets.

Each plot has one name used everywhere: the dvclive file
`reports/evaluate/plots/custom/<name>.json` (declared in dvc.yaml's top-level `plots`) and the
figure `reports/evaluate/figures/<name>.png`. Two pictures share data: both confusion matrices
(counts, shares of each true class) read `confusion_matrix.json`, and `calibration.png` also
draws `calibration_uncalibrated.json`.

Every plot in `PLOTS` is written for every task; one that does not apply (ROC for regression,
residuals for classification) holds an empty list, which DVC renders as nothing, without the
"file not found" error a missing declared file gives. So one dvc.yaml serves binary,
multiclass and regression runs, and experiments of different tasks still diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from reprotab.evaluate.figures import (
    TOP_FEATURES,
    confusion_figure,
    curve_figure,
    importance_figure,
    per_class_figure,
    predicted_vs_actual_figure,
    residuals_figure,
)
from reprotab.evaluate.importance import importance_table
from reprotab.evaluate.plot_data import (
    calibration_frame,
    calibration_target,
    confusion_records,
    confusion_table,
    macro_precision_recall,
    macro_roc,
    one_vs_rest,
    operating_points,
    per_class_records,
    per_class_table,
    precision_recall_frame,
    regression_frame,
    roc_frame,
)
from reprotab.model.served import TabularModel
from reprotab.stats.metrics import LOWER_IS_BETTER, Scored

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # drawn lazily (reprotab/evaluate/figures.py)

# Each dvclive plot file's x and y fields; dvc.yaml's top-level `plots` declares the same
# (template, titles, and which plots share a chart), and a test holds the two together.
PLOTS: dict[str, tuple[str, str]] = {
    "confusion_matrix": ("actual", "predicted"),
    "roc": ("fpr", "tpr"),
    "precision_recall": ("recall", "precision"),
    "calibration": ("prob_pred", "prob_true"),
    "calibration_uncalibrated": ("prob_pred", "prob_true"),
    "per_class": ("value", "label"),
    "residuals": ("predicted", "residual"),
    "predicted_vs_actual": ("actual", "predicted"),
    "importance_model": ("importance", "feature"),
    "importance_permutation": ("importance", "feature"),
}


@dataclass
class Report:
    """Everything evaluate writes besides metrics and predictions."""

    plots: dict[str, pd.DataFrame]  # every name in PLOTS; empty when the plot is not for this task
    figures: dict[str, Figure]  # name → PNG figure, only those that apply
    tables: dict[str, pd.DataFrame]  # name → CSV table


def _top(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.head(TOP_FEATURES).reset_index(drop=True)


def build_report(
    *,
    model: TabularModel,
    test: Scored,
    raw_proba: np.ndarray | None,
    own_importance: pd.Series | None,
    permutation: pd.DataFrame,
    metric: str,
) -> Report:
    """Plot data, figures and tables for the test split (`test` holds the served predictions;
    `raw_proba` the estimator's own probabilities when a calibrator is fitted)."""
    plots = {name: pd.DataFrame() for name in PLOTS}
    figures: dict[str, Figure] = {}
    tables: dict[str, pd.DataFrame] = {}
    if model.schema.task == "regression":
        frame = regression_frame(test.y_true, test.y_pred)
        plots["residuals"] = frame[["predicted", "residual"]]
        plots["predicted_vs_actual"] = frame[["actual", "predicted"]]
        figures["residuals"] = residuals_figure(frame)
        figures["predicted_vs_actual"] = predicted_vs_actual_figure(frame)
    else:
        _classification(model, test, raw_proba, plots, figures, tables)
    if own_importance is not None:
        own = own_importance.rename_axis("feature").reset_index()
        plots["importance_model"] = _top(own)
        figures["importance_model"] = importance_figure(
            own, title="Feature importance, model's own (share)", xlabel="share of the model's importance"
        )
    plots["importance_permutation"] = _top(permutation)
    lower = metric in LOWER_IS_BETTER
    figures["importance_permutation"] = importance_figure(
        permutation,
        title="Permutation importance (validation)",
        xlabel=f"{metric} {'increase' if lower else 'drop'} when the column is shuffled",
        error="std",
    )
    tables["importance"] = importance_table(own_importance, permutation)
    return Report(plots=plots, figures=figures, tables=tables)


def _classification(
    model: TabularModel,
    test: Scored,
    raw_proba: np.ndarray | None,
    plots: dict[str, pd.DataFrame],
    figures: dict[str, Figure],
    tables: dict[str, pd.DataFrame],
) -> None:
    labels = [str(c) for c in model.schema.classes]
    names = np.array(labels, dtype=object)
    curve_names = [f"{model.schema.target} = {c}" for c in labels] if test.positive is not None else labels
    plots["confusion_matrix"] = confusion_records(names[test.y_true], names[test.y_pred])
    for normalized, name in ((False, "confusion_matrix"), (True, "confusion_matrix_normalized")):
        table = confusion_table(test.y_true, test.y_pred, labels, normalized=normalized)
        figures[name] = confusion_figure(table, normalized=normalized)

    curves = one_vs_rest(test.y_true, test.probabilities(), labels=curve_names, positive=test.positive)
    roc = {name: roc_frame(hit, score) for name, (hit, score) in curves.items()}
    pr = {name: precision_recall_frame(hit, score) for name, (hit, score) in curves.items()}
    if test.positive is None:  # the headline curve (first, in the dvclive file) is the macro average
        roc = {"macro-average": macro_roc(roc.values()), **roc}
        pr = {"macro-average": macro_precision_recall(pr.values()), **pr}
    headline = next(iter(curves))
    plots["roc"], plots["precision_recall"] = next(iter(roc.values())), next(iter(pr.values()))
    points, prevalence = None, None
    if test.positive is not None:
        hit, score = curves[headline]
        chosen = {"threshold 0.5": 0.5}
        threshold = model.decision_threshold  # a binary model's: never None here
        if model.threshold is not None and threshold is not None:  # train chose one
            chosen["chosen threshold"] = threshold
        points, prevalence = operating_points(hit, score, chosen), float(np.mean(hit))
    roc_labels = {f"{name} (AUC {skm.auc(f['fpr'], f['tpr']):.3f})": f for name, f in roc.items()}
    figures["roc"] = curve_figure(
        roc_labels,
        x="fpr",
        y="tpr",
        title="ROC (test)",
        axis_labels=("false positive rate", "true positive rate"),
        points=points,
        diagonal=True,
    )
    figures["precision_recall"] = curve_figure(
        pr,
        x="recall",
        y="precision",
        title="Precision-recall (test)",
        axis_labels=("recall", "precision"),
        points=points,
        baseline=prevalence,
    )

    served = calibration_frame(*calibration_target(test.y_true, test.probabilities(), test.positive))
    calibration = {"calibrated" if raw_proba is not None else "model": served}
    plots["calibration"] = served
    if raw_proba is not None:
        before = calibration_frame(*calibration_target(test.y_true, raw_proba, test.positive))
        calibration["before calibration"] = plots["calibration_uncalibrated"] = before
    what = headline if test.positive is not None else "top-label confidence"
    figures["calibration"] = curve_figure(
        calibration,
        x="prob_pred",
        y="prob_true",
        title=f"Calibration, {what} (test)",
        axis_labels=("mean predicted probability (bins of equal rows)", "observed frequency"),
        diagonal=True,
        marker="o",
    )

    table = per_class_table(test.y_true, test.y_pred, labels)
    tables["per_class"], plots["per_class"] = table, per_class_records(table)
    figures["per_class"] = per_class_figure(table)
