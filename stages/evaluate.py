"""evaluate: score the saved model on the test split (validation shown for reference).

Reads   models/model.joblib, data/prepared/{validation,test}.parquet
Writes  reports/evaluate/metrics.json ({"test": {...}, "validation": {...}}),
        reports/evaluate/plots/sklearn/*.json (confusion matrix, ROC, precision-recall),
        reports/evaluate/predictions.csv
Params  metric

This is the only stage that reads the test split. It scores the saved TabularModel on raw
rows, so what is measured is exactly what would be served. Metrics and plots go through
dvclive so `dvc metrics diff` and `dvc plots diff` compare experiments.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from dvclive import Live

from stages.data import atomic_path
from stages.errors import UserError, problem
from stages.estimators import TabularModel, encode_target
from stages.metrics import Scored, score_all
from stages.params import load_stage_params
from stages.runner import stage_main

PARAMS = ("metric",)
log = logging.getLogger(__name__)


def score(model: TabularModel, rows: pd.DataFrame) -> tuple[Scored, dict[str, float]]:
    """Score the model on raw rows that include the target column."""
    schema = model.schema
    truth = encode_target(rows[schema.target], schema)
    if schema.task == "regression":
        scored = Scored(y_true=truth, y_pred=model.predict(rows))
    else:
        positive = model.positive_index() if len(schema.classes) == 2 else None
        # Rounded so thread-order noise in the last float digit does not change the report files.
        proba = model.predict_proba(rows).round(10)
        scored = Scored(y_true=truth, y_pred=model.predict_index(rows), proba=proba, positive=positive)
    return scored, score_all(schema.task, scored)


def predictions(model: TabularModel, rows: pd.DataFrame, scored: Scored) -> pd.DataFrame:
    """One row per test row: id (when known), truth, prediction and class probabilities."""
    schema = model.schema
    out = pd.DataFrame(index=rows.index)
    if schema.id_column:
        out[schema.id_column] = rows[schema.id_column]
    out["truth"] = rows[schema.target]
    out["predicted"] = model.predict(rows) if schema.task == "regression" else model.classes[scored.y_pred]
    if scored.proba is not None:
        for index, label in enumerate(schema.classes):
            out[f"proba_{label}"] = scored.proba[:, index].round(6)
    return out


def log_plots(live: Live, model: TabularModel, scored: Scored) -> None:
    if model.schema.task != "classification":
        return
    labels = model.classes
    live.log_sklearn_plot("confusion_matrix", labels[scored.y_true].astype(str), labels[scored.y_pred].astype(str))
    if scored.binary:
        is_positive = (scored.y_true == scored.positive).astype(int)
        live.log_sklearn_plot("roc", is_positive, scored.proba[:, scored.positive])
        live.log_sklearn_plot("precision_recall", is_positive, scored.proba[:, scored.positive])


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


@stage_main("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score the model on the test split.")
    parser.add_argument("--model", default="models/model.joblib")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out-dir", default="reports/evaluate")
    args = parser.parse_args(argv)
    params = load_stage_params("evaluate", PARAMS)
    model = load_model(args.model)
    prepared = Path(args.prepared)
    results: dict[str, Any] = {}
    for split in ("validation", "test"):
        rows = pd.read_parquet(prepared / f"{split}.parquet")
        results[split] = (rows, *score(model, rows))
    key = params.metric
    params.record_reads()
    with Live(dir=args.out_dir, dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for split, (_, _, values) in results.items():
            for name, value in values.items():
                live.log_metric(f"{split}/{name}", value, plot=False)
        test_rows, test_scored, _ = results["test"]
        log_plots(live, model, test_scored)
    with atomic_path(Path(args.out_dir) / "predictions.csv") as tmp:
        predictions(model, test_rows, test_scored).to_csv(tmp, index=False)
    test = results["test"][2]
    log.info(
        "test %s = %.4f (validation %.4f) on %d rows", key, test[key], results["validation"][2][key], len(test_rows)
    )


if __name__ == "__main__":
    main()
