"""The evaluation report's figures (matplotlib, PNG): one function per picture.

Figures are drawn on `Figure` objects, never pyplot's global state, so building them is a
pure function of the frames passed in and nothing leaks between stages or tests. matplotlib is
imported when the first figure is drawn: the gate stage imports the report's modules to score,
never to draw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP_FEATURES = 15


def _figure(width: float = 6.4, height: float = 4.8) -> tuple[Figure, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

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
