"""The evaluation report's one-page Markdown summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from reprotab.evaluate.figures import TOP_FEATURES
from reprotab.model.served import TabularModel
from reprotab.stats.metrics import LOWER_IS_BETTER


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
    validation_in_training: bool = False,
    shipped_on: dict[str, int] | None = None,
) -> str:
    """One page: what was evaluated, key metrics (test and validation), the threshold and
    calibration, top features, and links to every figure and file (relative to the page)."""
    schema, kind = model.schema, model.kind
    estimator = model.estimator_name
    what = "regression" if kind == "regression" else f"{kind} classification"
    classes = f" (classes {', '.join(map(str, schema.classes))})" if schema.classes else ""
    facts = [
        f"Model: {estimator}, {what} of `{schema.target}`{classes}",
        f"Test split: {rows['test']:,} rows; validation split ({rows['validation']:,} rows) shown for reference",
    ]
    if kind == "binary":
        threshold = f"{model.decision_threshold:.4f}"
        how = "chosen by train on the validation split" if model.threshold is not None else "the default; none chosen"
        facts.append(f"Decision threshold on P({schema.target} = {schema.positive_class}): {threshold}, {how}")
    if kind != "regression":
        method = getattr(model.calibrator, "method", type(model.calibrator).__name__)
        fitted = f"{method}, fitted by train on the validation split"
        facts.append(f"Calibration: {fitted if model.calibrator is not None else 'none'}")
    if validation_in_training:
        facts.append(
            "The shipped model was refitted on train + validation rows (train.refit): validation metrics and "
            "permutation importance are in-sample; judge by test"
        )
    elif model.threshold is not None or model.calibrator is not None:
        facts.append(
            "Validation metrics are optimistic where the threshold or calibration was fitted on them: judge by test"
        )

    if shipped_on:
        facts.append(
            "These figures judge the model fitted on train + validation (models/judged.zip). The shipped model "
            f"(models/model.zip) was then refitted with the same settings on every labelled row (train.refit: all: "
            f"{' + '.join(f'{name} {count:,}' for name, count in shipped_on.items())} rows): the test rows estimate "
            "it but took part in fitting it"
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
