"""Evaluation: score the served model on raw rows and assemble the evaluation report.

Scoring goes through the saved `TabularModel` on raw rows (featurizer, calibrator and threshold
included), so what is measured is exactly what would be served. The test split is the only
one evaluate headlines; validation is shown for reference (it chose the threshold and the
calibrator, so it is optimistic). Permutation importance uses validation rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.tables import atomic_path, fresh_dir
from reprotab.evaluate.importance import model_importance, permutation_importance
from reprotab.evaluate.report import PLOTS, Report, build_report
from reprotab.evaluate.summary import summary_markdown
from reprotab.model.schema import encode_target
from reprotab.model.served import TabularModel
from reprotab.stats.metrics import PROBABILITY_METRICS, Scored, flatten, score_all

PERMUTATION = {"n_repeats": 5, "max_rows": 2000}  # shuffles per column; validation rows used, at most


def scored_predictions(
    model: TabularModel, rows: pd.DataFrame, *, raw: bool = False
) -> tuple[Scored, np.ndarray | None]:
    """Served predictions on raw rows that include the target column; with `raw`, also the
    estimator's own probabilities when a calibrator changes them (else None)."""
    schema = model.schema
    truth = encode_target(rows[schema.target], schema)
    if schema.task == "regression":
        return Scored(y_true=truth, y_pred=np.asarray(model.predict(rows), dtype=float)), None
    positive = model.positive_index() if model.binary else None
    # Rounded so thread-order noise in the last float digit does not change the report files.
    proba = model.predict_proba(rows).round(10)
    uncalibrated = None
    if raw and model.calibrator is not None:
        uncalibrated = model.predict_proba(rows, calibrated=False).round(10)
    return Scored(y_true=truth, y_pred=model.class_indices(proba), proba=proba, positive=positive), uncalibrated


def measure(model: TabularModel, rows: pd.DataFrame) -> tuple[Scored, dict[str, float]]:
    """Score the model on raw rows that include the target column: every metric of the task."""
    scored, _ = scored_predictions(model, rows)
    return scored, score_all(model.schema.task, scored)


def split_metrics(model: TabularModel, scored: Scored, raw_proba: np.ndarray | None) -> dict[str, Any]:
    """Every metric of the task, plus threshold metrics at 0.5 (binary with a stored threshold)
    and probability metrics before calibration (with a calibrator)."""
    values: dict[str, Any] = score_all(model.schema.task, scored)
    if scored.binary and model.threshold is not None:  # also at the default, for comparison
        positive = scored.positive_index()
        at_half = np.where(scored.probabilities()[:, positive] >= 0.5, positive, 1 - positive)
        half = score_all("classification", Scored(scored.y_true, at_half, scored.proba, scored.positive))
        values["at_0.5"] = {k: v for k, v in half.items() if k not in PROBABILITY_METRICS}
    if raw_proba is not None:
        raw = score_all("classification", Scored(scored.y_true, raw_proba.argmax(axis=1), raw_proba, scored.positive))
        values["uncalibrated"] = {k: raw[k] for k in PROBABILITY_METRICS if k in raw}
    return values


def predictions(model: TabularModel, rows: pd.DataFrame, scored: Scored) -> pd.DataFrame:
    """One row per test row: id (when known), truth, prediction and class probabilities."""
    schema = model.schema
    out = pd.DataFrame(index=rows.index)
    if schema.id_column:
        out[schema.id_column] = rows[schema.id_column]
    out["truth"] = rows[schema.target]
    out["predicted"] = scored.y_pred if schema.task == "regression" else model.classes[scored.y_pred]
    if scored.proba is not None:
        for index, label in enumerate(schema.classes):
            out[f"proba_{label}"] = scored.proba[:, index].round(6)
    return out


def evaluate(
    *,
    model: TabularModel,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    metric: str,
    seed: int,
    permutation: dict[str, int] | None = None,
    trained_on: Iterable[str] = ("train",),
    shipped_on: dict[str, int] | None = None,
    scored: dict[str, tuple[Scored, np.ndarray | None]] | None = None,
) -> tuple[dict[str, Any], Report, pd.DataFrame, str]:
    """The whole stage without IO: metrics, the report's plots/figures/tables, predictions, summary.
    `trained_on`: the splits whose rows fitted the model (model.json); validation among them
    (train.refit) makes its metrics in-sample, and the summary says so. `shipped_on` (train.refit
    all): the rows the shipped model was refitted on, which the summary names. `scored` (engine
    dask): each split's predictions made on the workers (reprotab/engine/scoring.py
    `score_split`); `validation` is then a sample for permutation importance and `test` the id and
    target columns of every test row."""
    scored = scored or {
        split: scored_predictions(model, rows, raw=True) for split, rows in (("validation", validation), ("test", test))
    }
    metrics: dict[str, Any] = {split: split_metrics(model, *result) for split, result in scored.items()}
    threshold = model.decision_threshold
    if threshold is not None:  # binary
        metrics["threshold"] = round(threshold, 6)
    truth = encode_target(validation[model.schema.target], model.schema)
    permutation = permutation_importance(
        model, validation, truth, metric=metric, seed=seed, **(permutation or PERMUTATION)
    )
    (test_scored, raw), own = scored["test"], model_importance(model)
    report = build_report(
        model=model, test=test_scored, raw_proba=raw, own_importance=own, permutation=permutation, metric=metric
    )
    summary = summary_markdown(
        model=model,
        metrics=metrics,
        metric=metric,
        rows={split: len(result[0].y_true) for split, result in scored.items()},
        validation_in_training="validation" in trained_on,
        shipped_on=shipped_on,
        importance=report.tables["importance"],
        figures=report.figures,
        files=["metrics.json", "predictions.csv", *[f"tables/{name}.csv" for name in report.tables]],
    )
    return metrics, report, predictions(model, test, test_scored), summary


def write_report(out: Path, *, metrics: dict[str, Any], report: Report, preds: pd.DataFrame, summary: str) -> None:
    with fresh_dir(out / "figures") as figures:
        for name, figure in report.figures.items():
            figure.savefig(figures / f"{name}.png")
    with fresh_dir(out / "tables") as tables:
        for name, table in report.tables.items():
            table.to_csv(tables / f"{name}.csv", index=False)
    with atomic_path(out / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    from dvclive import Live  # imported here: it pulls in DVC, which nothing else in scoring needs

    with Live(dir=str(out), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in flatten(metrics).items():
            live.log_metric(name, value, plot=False)
        for name, frame in report.plots.items():
            x, y = PLOTS[name]
            records = json.loads(frame.to_json(orient="records"))  # NaN → null: plot files stay valid JSON
            live.log_plot(name, records, x=x, y=y)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary, encoding="utf-8")
