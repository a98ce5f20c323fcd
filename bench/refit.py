"""Does refitting on train + validation (train.refit) help test metrics? And which max_features
suits regression forests? Prints one row per table, model and setting, test metric per seed.

    .venv/bin/python bench/refit.py [--seeds 42 1 2] [--demo-rows 30000]

Tables: the demo churn table (classification target `churned`, regression target
`next_month_spend`) and scikit-learn's bundled breast_cancer, wine, digits (classification)
and diabetes (regression). Each run is reprotab.pipeline.run with the shipped params plus the
overrides shown; boosters stop early on validation (30 rounds), so refit also scales rounds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def tables(demo_rows: int):
    import pandas as pd
    from sklearn import datasets

    demo = pd.read_parquet(ROOT / "data/raw/churn.parquet")
    if demo_rows < len(demo):
        demo = demo.sample(n=demo_rows, random_state=0)
    yield (
        "demo",
        demo,
        {"target": "churned", "id_column": "customer_id", "drop_columns": ["next_month_spend"]},
        "classification",
    )
    yield (
        "demo",
        demo,
        {"target": "next_month_spend", "id_column": "customer_id", "drop_columns": ["churned"]},
        "regression",
    )
    for name, task in (
        ("breast_cancer", "classification"),
        ("wine", "classification"),
        ("digits", "classification"),
        ("diabetes", "regression"),
    ):
        frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
        yield name, frame, {"target": "target", "id_column": None, "drop_columns": []}, task


def main() -> None:
    import pandas as pd

    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run
    from tests.helpers import base_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    parser.add_argument("--demo-rows", type=int, default=30000)
    parser.add_argument("--only", choices=["refit", "max_features"], default=None)
    parser.add_argument(
        "--tables", nargs="+", default=None, help="demo breast_cancer wine digits diabetes (default all)"
    )
    args = parser.parse_args()
    rows = []
    for name, frame, data, task in tables(args.demo_rows):
        if args.tables and name not in args.tables:
            continue
        metric = "roc_auc" if task == "classification" else "rmse"
        settings = []
        if args.only in (None, "refit"):
            for model in ("random_forest", "lightgbm"):
                for refit in (False, True):
                    settings.append(
                        (
                            model,
                            {"train": {"refit": refit, "early_stopping_rounds": 30 if model == "lightgbm" else None}},
                            f"refit={refit}",
                        )
                    )
        if args.only in (None, "max_features") and task == "regression":
            for value in ("sqrt", 1.0):
                forest = {"n_estimators": 300, "min_samples_leaf": 5, "n_jobs": -1, "max_features": value}
                settings.append(
                    ("random_forest", {"hyperparameters": {"random_forest": forest}}, f"max_features={value}")
                )
        for model, overrides, label in settings:
            scores, started = [], time.perf_counter()
            for seed in args.seeds:
                raw = base_params(
                    task=task, metric=metric, model=model, seed=seed, data={**data, "path": "unused"}, **overrides
                )
                raw["data"]["positive_class"] = None
                result = run(frame.copy(), parse_params(raw), splits_to_score=("test",))
                scores.append(result.metrics["test"][metric])
            row = dict(
                table=name,
                task=task,
                model=model,
                setting=label,
                metric=metric,
                mean=round(statistics.mean(scores), 4),
                per_seed=" ".join(f"{s:.4f}" for s in scores),
                seconds=round(time.perf_counter() - started, 1),
            )
            rows.append(row)
            print(row, flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
