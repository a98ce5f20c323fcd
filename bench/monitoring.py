"""Benchmark `reprotab monitor` on a large batch and print the figures.

    .venv/bin/python bench/monitoring.py [--rows 1000000] [--drift 0.3] [--repeat 1]

Uses the pipeline's outputs when present (models/model.zip, data/prepared/{train,test}.parquet,
reports/evaluate/metrics.json and tables/importance.csv: run `dvc repro` first), else trains
the default model in-process on the demo table. Writes a labeled demo batch of --rows rows
(seeded, --drift) as Parquet to a temporary folder, then times:

- the whole command in-process (read the batch, monitor, write drift.json/drift.md/figures),
- the monitor core's parts on the same batch: cleaning, per-feature PSI + tests, scoring the
  seeded sample of `monitor.sample_rows` rows, the bootstrap interval of each judged metric (the
  headline and `monitor.tolerances`) and the label drift of the batch's target.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clock(label: str, function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    print(f"  {label:<44}: {time.perf_counter() - started:7.2f} s")
    return result


def main() -> None:
    import numpy as np
    import pandas as pd

    from reprotab.data.demo import generate
    from reprotab.model import served
    from reprotab.monitoring.reference import build, model_scores
    from reprotab.monitoring.report import main as monitor_command
    from reprotab.monitoring.verdict import clean, feature_drift, label_drift
    from reprotab.params.loader import load_params
    from reprotab.stats import bootstrap
    from reprotab.stats.drift import sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--drift", type=float, default=0.3)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    params = load_params(ROOT / "params.yaml")
    model_path, reference_path = ROOT / "models/model.zip", ROOT / "data/prepared/train.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if model_path.is_file() and reference_path.is_file():
            model = served.load(model_path)
            extra = []
        else:
            from reprotab.pipeline import run

            print("no pipeline outputs: training the default model in-process")
            result = run(pd.read_parquet(ROOT / params.data.path), params)
            model, model_path, reference_path = result.model, tmp / "model.zip", tmp / "train.parquet"
            served.save(model, model_path)
            result.splits["train"].to_parquet(reference_path)
            result.splits["test"].to_parquet(tmp / "test.parquet")
            extra = ["--holdout", str(tmp / "test.parquet"), "--metrics", str(tmp / "none.json")]
            extra += ["--drift-reference", str(tmp / "none.json")]  # built from the splits, as for an old version
        reference = pd.read_parquet(reference_path)
        holdout = pd.read_parquet(reference_path.with_name("test.parquet"))
        batch = generate(rows=args.rows, seed=101, drift=args.drift)
        batch.to_parquet(tmp / "batch.parquet", index=False)
        config = params.monitor
        print(
            f"batch: {args.rows:,} rows (demo, drift {args.drift}); reference: {len(reference):,} training rows; "
            f"model: {type(model.estimator).__name__}; sample_rows {config.sample_rows:,}, bootstrap {config.bootstrap}"
        )
        command = [
            "--batch",
            str(tmp / "batch.parquet"),
            "--model",
            str(model_path),
            "--reference",
            str(reference_path),
            "--out",
            str(tmp / "reports"),
            "--params",
            str(ROOT / "params.yaml"),
            *extra,
        ]
        print("whole command (in-process):")
        clock("reprotab monitor --batch (1 run)", monitor_command, command)
        logging.disable(logging.INFO)
        print("parts of the core:")
        schema = model.schema
        cleaned = clock("clean the batch (text → numbers, ±inf)", clean, batch, model, min_share=0.95).frame
        summary = clock(
            "summarize the reference (the pipeline does it once)",
            build,
            model,
            reference,
            holdout,
            model_sha256=None,
            origin="",
        )
        clock(
            f"PSI + KS/chi2 of {len(schema.features)} features",
            feature_drift,
            summary,
            cleaned,
            schema=schema,
            config=config,
            seed=0,
        )
        picked = np.sort(sample(np.arange(len(batch)), max_rows=config.sample_rows, seed=0))
        _, proba = clock(f"score {len(picked):,} sampled rows", model_scores, model, cleaned.iloc[picked])
        if proba is not None:
            from reprotab.model.schema import encode_target
            from reprotab.stats.metrics import BY_TASK, Scored

            truth = encode_target(batch[schema.target].iloc[picked], schema)
            positive = model.positive_index() if model.binary else None
            scored = Scored(truth, model.class_indices(proba), proba, positive)
            judged = [params.metric, *(m for m in config.tolerances if m in BY_TASK[schema.task])]
            for metric in dict.fromkeys(judged):  # the headline and each metric of monitor.tolerances
                clock(
                    f"bootstrap {config.bootstrap} x {metric} on {len(picked):,} rows",
                    bootstrap.interval,
                    scored,
                    metric=metric,
                    task=schema.task,
                    samples=config.bootstrap,
                    seed=0,
                )
        clock(
            f"label drift of {len(batch):,} labeled rows",
            label_drift,
            summary,
            batch,
            schema=schema,
            config=config,
            seed=0,
        )
        started = time.perf_counter()
        model_scores(model, cleaned.iloc[: min(200_000, len(cleaned))])
        per_row = (time.perf_counter() - started) / min(200_000, len(cleaned))
        print(f"  {'(scoring every row instead, extrapolated)':<44}: {per_row * len(batch):7.2f} s")


if __name__ == "__main__":
    main()
