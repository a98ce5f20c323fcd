"""evaluate: score the saved model on the test split (validation shown for reference) and write
the evaluation report.

Reads   models/model.joblib, data/prepared/{validation,test}.parquet
Writes  reports/evaluate/metrics.json  every metric of the task, test and validation; binary models
            add `threshold`, and with a stored threshold the threshold metrics at 0.5
            (`test/at_0.5/f1`, ...); with a calibrator, probability metrics before it (`test/uncalibrated/brier`)
        reports/evaluate/plots/custom/*.json  dvclive plots declared in dvc.yaml (see stages/reporting.py)
        reports/evaluate/figures/*.png, tables/{importance,per_class}.csv, predictions.csv, summary.md
Params  metric (headline metric, permutation importance), seed (permutation importance)

This is the only stage that reads the test split. It scores the saved TabularModel on raw rows,
so what is measured is exactly what would be served. Permutation importance uses the validation
split (see PERMUTATION for its rows and repeats).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from dvclive import Live

from stages import reporting
from stages.data import atomic_path
from stages.errors import UserError, problem
from stages.estimators import TabularModel, encode_target
from stages.metrics import Scored, flatten, score_all
from stages.params import load_stage_params
from stages.runner import stage_main

PARAMS = ("metric", "seed")
PERMUTATION = {"n_repeats": 5, "max_rows": 2000}  # shuffles per column; validation rows used, at most
log = logging.getLogger(__name__)


def scored_predictions(
    model: TabularModel, rows: pd.DataFrame, *, raw: bool = False
) -> tuple[Scored, np.ndarray | None]:
    """Served predictions on raw rows that include the target column; with `raw`, also the
    estimator's own probabilities when a calibrator changes them (else None)."""
    schema = model.schema
    truth = encode_target(rows[schema.target], schema)
    if schema.task == "regression":
        return Scored(y_true=truth, y_pred=np.asarray(model.predict(rows), dtype=float)), None
    positive = model.positive_index() if len(schema.classes) == 2 else None
    # Rounded so thread-order noise in the last float digit does not change the report files.
    proba = model.predict_proba(rows).round(10)
    uncalibrated = None
    if raw and model.calibrator is not None:
        uncalibrated = model.predict_proba(rows, calibrated=False).round(10)
    return Scored(y_true=truth, y_pred=model.predict_index(rows), proba=proba, positive=positive), uncalibrated


def score(model: TabularModel, rows: pd.DataFrame) -> tuple[Scored, dict[str, float]]:
    """Score the model on raw rows that include the target column: every metric of the task."""
    scored, _ = scored_predictions(model, rows)
    return scored, score_all(model.schema.task, scored)


def split_metrics(model: TabularModel, scored: Scored, raw_proba: np.ndarray | None) -> dict[str, Any]:
    """Every metric of the task, plus threshold metrics at 0.5 (binary with a stored threshold)
    and probability metrics before calibration (with a calibrator)."""
    values: dict[str, Any] = score_all(model.schema.task, scored)
    if scored.binary and model.threshold is not None:
        p = scored.proba[:, scored.positive]
        at_half = np.where(p >= 0.5, scored.positive, 1 - scored.positive)
        half = score_all("classification", Scored(scored.y_true, at_half, scored.proba, scored.positive))
        values["at_0.5"] = {k: v for k, v in half.items() if k not in reporting.PROBABILITY_METRICS}
    if raw_proba is not None:
        raw = score_all("classification", Scored(scored.y_true, raw_proba.argmax(axis=1), raw_proba, scored.positive))
        values["uncalibrated"] = {k: raw[k] for k in reporting.PROBABILITY_METRICS if k in raw}
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


def load_model(path: str | Path) -> TabularModel:
    try:
        model = joblib.load(path)
    except FileNotFoundError:
        raise UserError(problem("model", "file not found", str(path), "Run `dvc repro train` first")) from None
    except Exception as exc:  # a truncated or foreign pickle raises many types
        raise UserError(problem("model", f"cannot be loaded ({type(exc).__name__}: {exc})", str(path))) from None
    if not isinstance(model, TabularModel):
        raise UserError(problem("model", "is not a model saved by the train stage", type(model).__name__))
    return model


@contextmanager
def fresh_dir(path: Path) -> Iterator[Path]:
    """An empty directory beside `path` that replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        tmp.chmod(path.parent.stat().st_mode & 0o777)
        shutil.rmtree(path, ignore_errors=True)  # never half-written: the old one or none, then the new
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def evaluate(
    *, model: TabularModel, validation: pd.DataFrame, test: pd.DataFrame, metric: str, seed: int
) -> tuple[dict[str, Any], reporting.Report, pd.DataFrame, str]:
    """The whole stage without IO: metrics, the report's plots/figures/tables, predictions, summary."""
    scored = {
        split: scored_predictions(model, rows, raw=True) for split, rows in (("validation", validation), ("test", test))
    }
    metrics: dict[str, Any] = {split: split_metrics(model, *result) for split, result in scored.items()}
    if reporting.task_kind(model) == "binary":
        metrics["threshold"] = round(float(0.5 if model.threshold is None else model.threshold), 6)
    permutation = reporting.permutation_importance(
        model, validation, scored["validation"][0].y_true, metric=metric, seed=seed, **PERMUTATION
    )
    (test_scored, raw), own = scored["test"], reporting.model_importance(model)
    report = reporting.build_report(
        model=model, test=test_scored, raw_proba=raw, own_importance=own, permutation=permutation, metric=metric
    )
    summary = reporting.summary_markdown(
        model=model,
        metrics=metrics,
        metric=metric,
        rows={"test": len(test), "validation": len(validation)},
        importance=report.tables["importance"],
        figures=report.figures,
        files=["metrics.json", "predictions.csv", *[f"tables/{name}.csv" for name in report.tables]],
    )
    return metrics, report, predictions(model, test, test_scored), summary


def write_report(
    out: Path, *, metrics: dict[str, Any], report: reporting.Report, preds: pd.DataFrame, summary: str
) -> None:
    with fresh_dir(out / "figures") as figures:
        for name, figure in report.figures.items():
            figure.savefig(figures / f"{name}.png")
    with fresh_dir(out / "tables") as tables:
        for name, table in report.tables.items():
            table.to_csv(tables / f"{name}.csv", index=False)
    with atomic_path(out / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    with Live(dir=str(out), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in flatten(metrics).items():
            live.log_metric(name, value, plot=False)
        for name, frame in report.plots.items():
            x, y = reporting.PLOTS[name]
            records = json.loads(frame.to_json(orient="records"))  # NaN → null: plot files stay valid JSON
            live.log_plot(name, records, x=x, y=y)
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(summary, encoding="utf-8")


@stage_main("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score the model on the test split; write the evaluation report.")
    parser.add_argument("--model", default="models/model.joblib")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out-dir", default="reports/evaluate")
    args = parser.parse_args(argv)
    params = load_stage_params("evaluate", PARAMS)
    metric, seed = params.metric, params.seed
    params.record_reads()
    model = load_model(args.model)
    rows = {split: pd.read_parquet(Path(args.prepared) / f"{split}.parquet") for split in ("validation", "test")}
    metrics, report, preds, summary = evaluate(model=model, **rows, metric=metric, seed=seed)
    out = Path(args.out_dir)
    write_report(out, metrics=metrics, report=report, preds=preds, summary=summary)
    scores = metrics["test"][metric], metrics["validation"][metric], report.tables["importance"]["feature"].iloc[0]
    log.info("test %s = %.4f (validation %.4f); top feature %s; report in %s", metric, *scores, out / "summary.md")


if __name__ == "__main__":
    main()
