"""The evaluation report's pieces: plot data, figures, tables and the one-page summary.

Pure functions: arrays, frames and a model in; frames, matplotlib figures and Markdown out. The
evaluate stage writes what they return. Each plot has one name used everywhere: the dvclive file
`reports/evaluate/plots/custom/<name>.json` (declared in dvc.yaml's top-level `plots`, so
`dvc plots diff` overlays experiments) and the figure `reports/evaluate/figures/<name>.png`.
Two pictures share data: both confusion matrices (counts, shares of each true class) read
`confusion_matrix.json`, and `calibration.png` also draws `calibration_uncalibrated.json`.

Every plot in `PLOTS` is written for every task; one that does not apply (ROC for regression,
residuals for classification) holds an empty list, which DVC renders as nothing, without the
"file not found" error a missing declared file gives. So one dvc.yaml serves binary, multiclass
and regression runs, and experiments of different tasks still diff.

Choices worth knowing:

- Multiclass curves are one-vs-rest: the figures draw every class and their macro average;
  the dvclive ROC and precision-recall files hold the macro average (classes weigh the same,
  as in the macro metrics), so `dvc plots diff` draws one line per experiment.
- Calibration: binary models show the positive class, multiclass models the top-label
  confidence (the predicted class's probability against how often it is right). Points are
  bins of equal row counts, so the sparse high-probability end of an imbalanced problem still
  gets reliable points. With a calibrator, the curve before calibration is drawn too.
- The model's own importance (`feature_importances_`: impurity for random forests, gain for
  XGBoost, split counts for LightGBM) is summed back from the featurizer's output columns to the
  raw column they came from (one-hot columns and missing-value flags), then scaled to shares
  that sum to 1, so it reads in the same columns as permutation importance.
- Permutation importance shuffles one raw column at a time through the whole model (featurizer
  included) on a seeded sample of the validation split, and reports how much the chosen metric
  gets worse (for loss metrics, how much the loss rises).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance as sk_permutation_importance

from stages.estimators import TabularModel
from stages.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from stages.preprocessing import one_hot_groups

TOP_FEATURES = 15
MAX_CURVE_POINTS = 500
# Metrics that judge probabilities only; the others depend on the decision threshold.
PROBABILITY_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")
MISSING_FLAG = "missingindicator_"  # SimpleImputer(add_indicator=True) output prefix


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


def task_kind(model: TabularModel) -> str:
    if model.schema.task == "regression":
        return "regression"
    return "binary" if len(model.schema.classes) == 2 else "multiclass"


# ---------------------------------------------------------------- plot data (frames)


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


# ---------------------------------------------------------------- feature importance


def source_columns(output_names: Iterable[str], *, features: Iterable[str], one_hot: dict[str, list[str]]) -> dict:
    """Each featurizer output column → the raw column it came from (one-hot columns and
    missing-value flags fold into their column; anything unknown keeps its own name)."""
    features = set(features)
    owner = {out: column for column, outs in one_hot.items() for out in outs}
    mapping = {}
    for name in output_names:
        flagged = name.removeprefix(MISSING_FLAG)
        if name in owner:
            mapping[name] = owner[name]
        elif name not in features and name.startswith(MISSING_FLAG) and flagged in features:
            mapping[name] = flagged
        else:
            mapping[name] = name
    return mapping


def aggregate_importance(importances: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Sum output-column importances per raw column, as shares summing to 1, largest first."""
    summed = importances.groupby(importances.index.map(lambda n: mapping.get(n, n))).sum()
    total = summed.sum()
    shares = summed / total if total > 0 else summed
    return shares.sort_values(ascending=False, kind="stable").rename("importance")


def model_importance(model: TabularModel) -> pd.Series | None:
    """The estimator's `feature_importances_` per raw column, or None when it has none."""
    estimator, featurizer = model.pipeline.named_steps["model"], model.pipeline.named_steps["features"]
    values = getattr(estimator, "feature_importances_", None)
    names = list(featurizer.get_feature_names_out())
    if values is None or len(values) != len(names):
        return None
    mapping = source_columns(names, features=model.schema.features, one_hot=one_hot_groups(featurizer))
    return aggregate_importance(pd.Series(np.asarray(values, dtype=float), index=names), mapping)


class Fitted:
    """A fitted TabularModel as sklearn's permutation_importance wants it (an object with `fit`);
    it is never refitted."""

    def __init__(self, model: TabularModel) -> None:
        self.model = model

    def fit(self, *args: Any, **kwargs: Any) -> Fitted:
        raise TypeError("the model is already fitted; permutation importance only scores it")


def metric_scorer(metric: str, task: str) -> Any:
    """A scorer `(Fitted(model), rows, y) -> float`, higher is better (loss metrics are negated)."""
    function, sign = BY_TASK[task][metric], -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(fitted: Fitted, rows: pd.DataFrame, y: np.ndarray) -> float:
        model = fitted.model
        if task == "regression":
            return sign * function(Scored(y_true=y, y_pred=model.predict(rows)))
        proba = model.predict_proba(rows)
        predicted = proba.argmax(axis=1) if metric in PROBABILITY_METRICS else model.predict_index(rows)
        positive = model.positive_index() if proba.shape[1] == 2 else None
        return sign * function(Scored(y_true=y, y_pred=predicted, proba=proba, positive=positive))

    return score


def permutation_importance(
    model: TabularModel, rows: pd.DataFrame, y: np.ndarray, *, metric: str, seed: int, n_repeats: int, max_rows: int
) -> pd.DataFrame:
    """Drop in `metric` when one raw column is shuffled, on at most `max_rows` seeded rows."""
    if len(rows) > max_rows:
        picked = np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False)
        picked.sort()
        rows, y = rows.iloc[picked], y[picked]
    X = rows[list(model.schema.features)]
    # Columns in parallel threads: tree predictions release the GIL, and threads share the model
    # instead of copying it into worker processes. Results do not depend on the thread count.
    with parallel_config(backend="threading"):
        result = sk_permutation_importance(
            Fitted(model),
            X,
            y,
            scoring=metric_scorer(metric, model.schema.task),
            n_repeats=n_repeats,
            random_state=seed,
            n_jobs=-1,
        )
    frame = pd.DataFrame(
        {
            "feature": X.columns,
            "importance": result.importances_mean.round(6),
            "std": result.importances_std.round(6),
        }
    )
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def importance_table(own: pd.Series | None, permutation: pd.DataFrame) -> pd.DataFrame:
    """Both importances per raw column, ranked by permutation importance."""
    table = permutation.rename(columns={"importance": "permutation", "std": "permutation_std"})
    table["model"] = table["feature"].map(own).round(6) if own is not None else np.nan
    return table[["feature", "permutation", "permutation_std", "model"]]


# ---------------------------------------------------------------- figures


def _figure(width: float = 6.4, height: float = 4.8) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def confusion_figure(table: pd.DataFrame, *, normalized: bool) -> Figure:
    size = 3.2 + 0.6 * len(table)
    figure, ax = _figure(size + 1, size)
    values = table.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalized else None)
    figure.colorbar(image, ax=ax, shrink=0.8)
    title = "Confusion matrix, shares of each true class (test)" if normalized else "Confusion matrix (test)"
    ax.set(
        xticks=range(len(table.columns)),
        yticks=range(len(table.index)),
        xticklabels=table.columns,
        yticklabels=table.index,
        xlabel="predicted class",
        ylabel="true class",
        title=title,
    )
    ax.tick_params(axis="x", labelrotation=30)
    middle = (1.0 if normalized else values.max(initial=0)) / 2
    for (i, j), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalized else f"{int(value):,}"
        ax.text(j, i, text, ha="center", va="center", color="white" if value > middle else "black")
    return figure


def curve_figure(
    curves: dict[str, pd.DataFrame],
    *,
    x: str,
    y: str,
    title: str,
    axis_labels: tuple[str, str],
    points: pd.DataFrame | None = None,
    diagonal: bool = False,
    baseline: float | None = None,
    marker: str | None = None,
) -> Figure:
    """Curves (ROC, precision-recall, calibration) with optional marked operating points; the
    first curve is the headline one and is drawn thicker."""
    figure, ax = _figure()
    for name, frame in curves.items():
        width = 2 if name == next(iter(curves)) else 1
        ax.plot(frame[x], frame[y], label=name, linewidth=width, marker=marker, markersize=4)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance" if x == "fpr" else "ideal")
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="grey", linewidth=1, label=f"prevalence {baseline:.3f}")
    if points is not None:
        for row in points.itertuples():
            ax.scatter(getattr(row, x), getattr(row, y), zorder=3, label=f"{row.name} ({row.threshold:.3f})")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel=axis_labels[0], ylabel=axis_labels[1], title=title)
    ax.legend(loc="best", fontsize="small")
    return figure


def per_class_figure(table: pd.DataFrame) -> Figure:
    figure, ax = _figure(max(6.4, 1.2 * len(table) + 2), 4.8)
    positions, width = np.arange(len(table)), 0.27
    for offset, name in enumerate(("precision", "recall", "f1")):
        ax.bar(positions + (offset - 1) * width, table[name], width, label=name)
    ax.set(xticks=positions, ylim=(0, 1.05), ylabel="score", title="Per-class metrics (test)")
    ax.set_xticklabels([f"{c}\n(n={n:,})" for c, n in zip(table["class"], table["support"], strict=True)])
    ax.legend(loc="best", fontsize="small")
    return figure


def residuals_figure(frame: pd.DataFrame) -> Figure:
    figure, ax = _figure()
    ax.scatter(frame["predicted"], frame["residual"], s=6, alpha=0.4)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="predicted", ylabel="actual − predicted", title="Residuals (test)")
    return figure


def predicted_vs_actual_figure(frame: pd.DataFrame) -> Figure:
    figure, ax = _figure()
    ax.scatter(frame["actual"], frame["predicted"], s=6, alpha=0.4)
    low, high = (
        float(min(frame["actual"].min(), frame["predicted"].min())),
        float(frame[["actual", "predicted"]].max().max()),
    )
    ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="predicted = actual")
    ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test)")
    ax.legend(loc="best", fontsize="small")
    return figure


def importance_figure(frame: pd.DataFrame, *, title: str, xlabel: str, error: str | None = None) -> Figure:
    """Horizontal bars, largest on top; `frame` has `feature`, `importance` (and `error`)."""
    top = frame.head(TOP_FEATURES).iloc[::-1]
    figure, ax = _figure(6.4, 1.0 + 0.32 * max(len(top), 1))
    ax.barh(top["feature"], top["importance"], xerr=top[error] if error else None, color="tab:blue")
    ax.set(xlabel=xlabel, title=title)
    return figure


# ---------------------------------------------------------------- the report


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

    curves = one_vs_rest(test.y_true, test.proba, labels=curve_names, positive=test.positive)
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
        if model.threshold is not None:
            chosen["chosen threshold"] = float(model.threshold)
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

    served = calibration_frame(*calibration_target(test.y_true, test.proba, test.positive))
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


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def summary_markdown(
    *,
    model: TabularModel,
    metrics: dict[str, Any],
    metric: str,
    rows: dict[str, int],
    importance: pd.DataFrame,
    figures: Iterable[str],
    files: Iterable[str],
) -> str:
    """One page: what was evaluated, key metrics (test and validation), the threshold and
    calibration, top features, and links to every figure and file (relative to the page)."""
    schema, kind = model.schema, task_kind(model)
    estimator = type(model.pipeline.named_steps["model"]).__name__
    what = "regression" if kind == "regression" else f"{kind} classification"
    classes = f" (classes {', '.join(map(str, schema.classes))})" if schema.classes else ""
    facts = [
        f"Model: {estimator}, {what} of `{schema.target}`{classes}",
        f"Test split: {rows['test']:,} rows; validation split ({rows['validation']:,} rows) shown for reference",
    ]
    if kind == "binary":
        threshold = f"{metrics.get('threshold', 0.5):.4f}"
        how = "chosen by train on the validation split" if model.threshold is not None else "the default; none chosen"
        facts.append(f"Decision threshold on P({schema.target} = {schema.positive_class}): {threshold}, {how}")
    if kind != "regression":
        method = getattr(model.calibrator, "method", type(model.calibrator).__name__)
        fitted = f"{method}, fitted by train on the validation split"
        facts.append(f"Calibration: {fitted if model.calibrator is not None else 'none'}")
    if model.threshold is not None or model.calibrator is not None:
        facts.append(
            "Validation metrics are optimistic where the threshold or calibration was fitted on them: judge by test"
        )

    test, validation = metrics["test"], metrics["validation"]
    names = [metric] + [n for n, v in test.items() if n != metric and not isinstance(v, dict)]
    lines = [f"# Evaluation report: {schema.target}", "", *[f"- {fact}" for fact in facts], "", "## Metrics", ""]
    lines += ["| metric | test | validation |", "| --- | ---: | ---: |"]
    for name in names:
        label = f"**{name}**" if name == metric else name
        lines.append(f"| {label} | {_number(test[name])} | {_number(validation[name])} |")
    for block, caption in (("at_0.5", "at threshold 0.5"), ("uncalibrated", "before calibration")):
        if isinstance(test.get(block), dict):
            values = ", ".join(f"{n} {_number(v)}" for n, v in test[block].items())
            lines += ["", f"Test metrics {caption}: {values}."]

    change = "rise" if metric in LOWER_IS_BETTER else "drop"
    lines += ["", f"## Top features (validation split; permutation = {change} in `{metric}` when shuffled)", ""]
    lines += ["| rank | feature | permutation | ± std | model's own share |", "| ---: | --- | ---: | ---: | ---: |"]
    for rank, row in enumerate(importance.head(TOP_FEATURES).itertuples(), start=1):
        own = "" if pd.isna(row.model) else f"{row.model:.3f}"
        lines.append(f"| {rank} | {row.feature} | {row.permutation:.4f} | {row.permutation_std:.4f} | {own} |")
    lines += ["", "## Figures", "", *[f"- [{name.replace('_', ' ')}](figures/{name}.png)" for name in figures]]
    lines += ["", "## Files", "", *[f"- [{name}]({name})" for name in files], ""]
    return "\n".join(lines)
