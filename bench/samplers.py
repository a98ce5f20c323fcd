"""Benchmark every class balancing strategy on the full demo data and print the figures.

    .venv/bin/python bench/samplers.py [--metric roc_auc] [--model random_forest] [--threshold auto]
                                       [--samplers none,smote] [--rows N] [--dvc [--jobs 1]]

In-process (always): read data/raw/churn.parquet, prepare and featurize once with params.yaml,
then for each registered sampler call reprotab.train.fit.fit (resampling, fit, and the
decision threshold chosen on the validation split per `train` params) and reprotab.evaluate.scores.measure
on the test split, exactly as the pipeline stages do. Prints per sampler: the sampler actually
used (what `auto` chose), training rows after resampling, the decision threshold, the test
metrics (--metric first, then pr_auc, f1, recall, precision; f1, recall and precision depend on
the threshold, roc_auc and pr_auc do not) and the wall time of fit (resampling + fit + threshold);
then the ranking by --metric, with the difference to `none`.

--dvc: also run the recipe of docs/recipes/samplers.md ("Compare class balancing strategies") at
full size in a fresh temporary copy of the repository: `dvc exp run --queue -S sampler=...` for every
sampler, `dvc exp run --run-all`, `reprotab compare --by sampler`; prints the times and the report it
writes (reports/compare/sampler.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPORTED = ("pr_auc", "f1", "recall", "precision")


def bench_params(threshold: str | None) -> Any:
    """params.yaml with --threshold as train.threshold, checked by the params loader like any edit."""
    import yaml

    from reprotab.params.loader import parse_params

    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    if threshold is not None:
        value = None if threshold.lower() == "none" else yaml.safe_load(threshold)  # "auto", null or a number
        raw.setdefault("train", {})["threshold"] = value
    return parse_params(raw)


def in_process(p: Any, *, samplers: list[str], model: str | None, rows: int | None) -> tuple[list[dict[str, Any]], str]:
    """One row per sampler: sampler used, resampled training rows, threshold, test metrics, fit seconds."""
    import pandas as pd

    from reprotab.data.prepare import prepare_with
    from reprotab.errors import UserError
    from reprotab.evaluate.scores import measure
    from reprotab.model.featurizer import featurize
    from reprotab.params.loader import hyperparameters_for
    from reprotab.train.fit import fit

    model = model or p.model
    frame = pd.read_parquet(ROOT / p.data.path)
    if rows is not None:
        frame = frame.sample(rows, random_state=0)
    splits, schema, _ = prepare_with(frame, p)
    settings = p.train
    featurizer, train, validation = featurize(
        train=splits["train"], validation=splits["validation"], schema=schema, config=p.featurize, seed=p.seed
    )
    positive = splits["train"][schema.target].astype(str).eq(str(schema.positive_class)).mean()
    header = (
        f"data: {ROOT / p.data.path} ({len(frame)} rows; train/validation/test "
        f"{len(splits['train'])}/{len(splits['validation'])}/{len(splits['test'])}; "
        f"positive class {schema.positive_class!r} {positive:.1%} of train)\n"
        f"model: {model}, seed {p.seed}, {train.shape[1] - 1} model features, {os.cpu_count()} CPUs; "
        f"train.threshold {settings.threshold!r} ({settings.threshold_metric} on validation when auto), "
        f"calibration {settings.calibration}"
    )
    results = []
    for sampler in samplers:
        started = time.perf_counter()
        try:
            fitted, summary = fit(
                features=train,
                schema=schema,
                featurizer=featurizer,
                model=model,
                hyperparameters=hyperparameters_for(p.hyperparameters, model=model, task=p.task),
                seed=p.seed,
                sampler=sampler,
                sampling=p.sampling,
                validation=validation,
                settings=settings,
            )
        except UserError as exc:
            results.append({"sampler": sampler, "error": str(exc).splitlines()[0]})
            continue
        seconds = time.perf_counter() - started
        _, test = measure(fitted, splits["test"])
        results.append(
            {
                "sampler": sampler,
                "used": summary["sampler_used"],
                "rows": summary["training_rows_resampled"],
                "threshold": summary.get("threshold"),
                "seconds": seconds,
                **test,
            }
        )
        print(f"  {sampler:<16} done in {seconds:6.1f} s", file=sys.stderr, flush=True)
    return results, header


def print_table(results: list[dict[str, Any]], *, metric: str) -> None:
    columns = [metric, *(m for m in REPORTED if m != metric)]
    print(f"| sampler | used | train rows | threshold | {' | '.join(columns)} | fit s |")
    print("|" + "---|" * (len(columns) + 5))
    for row in results:
        if "error" in row:
            print(f"| {row['sampler']} | failed: {row['error']} |")
            continue
        values = " | ".join(f"{row[c]:.4f}" for c in columns)
        threshold = "—" if row["threshold"] is None else f"{row['threshold']:.3f}"
        print(f"| {row['sampler']} | {row['used']} | {row['rows']} | {threshold} | {values} | {row['seconds']:.1f} |")


def print_ranking(results: list[dict[str, Any]], *, metric: str) -> None:
    from reprotab.stats.metrics import LOWER_IS_BETTER

    scored = [r for r in results if "error" not in r]
    ranked = sorted(scored, key=lambda r: r[metric], reverse=metric not in LOWER_IS_BETTER)
    baseline = next((r[metric] for r in scored if r["sampler"] == "none"), None)
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    print(f"\nranking by test {metric} ({direction} is better):")
    for i, row in enumerate(ranked, 1):
        delta = "" if baseline is None else f"  ({row[metric] - baseline:+.4f} vs none)"
        print(f"  {i}. {row['sampler']:<16} {row[metric]:.4f}{delta}")


def dvc_recipe(*, samplers: list[str], jobs: int) -> None:
    """The docs' class balancing recipe, for real, in a temporary full-size copy of the repository."""
    from tests.helpers import make_repo, tool_env

    env = tool_env()
    dvc = str(Path(sys.executable).parent / "dvc")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp), rows=None)
        timings = []
        for label, args in (
            ("dvc exp run --queue", [dvc, "exp", "run", "--queue", "-S", f"sampler={','.join(samplers)}"]),
            ("dvc exp run --run-all", [dvc, "exp", "run", "--run-all", "--jobs", str(jobs)]),
            ("reprotab compare", [sys.executable, "-m", "reprotab", "compare", "--by", "sampler"]),
        ):
            started = time.perf_counter()
            done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
            timings.append((label, time.perf_counter() - started))
            if done.returncode != 0:
                print(f"{label} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
                return
        queue = subprocess.run([dvc, "queue", "status"], cwd=repo, env=env, capture_output=True, text=True)
        print(f"\n--dvc: the docs' recipe in a full-size temporary copy ({len(samplers)} experiments, {jobs} job(s))")
        for label, seconds in timings:
            print(f"  {label:<24}: {seconds:7.1f} s")
        print("\ndvc queue status:\n" + queue.stdout.rstrip())
        print("\nreports/compare/sampler.md:\n")
        print((repo / "reports/compare/sampler.md").read_text(encoding="utf-8"))


def main() -> None:
    from reprotab.errors import UserError
    from reprotab.params.sections import registry

    METRICS, SAMPLERS = registry("metrics"), registry("samplers")

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metric", default="roc_auc", choices=METRICS["classification"])
    parser.add_argument("--model", default=None, help="default: model in params.yaml")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated; default: all")
    parser.add_argument(
        "--threshold", default=None, help="override train.threshold: auto, none (0.5) or a number in [0, 1]"
    )
    parser.add_argument("--rows", type=int, default=None, help="sample this many rows (default: the full table)")
    parser.add_argument("--dvc", action="store_true", help="also run the docs' recipe with real dvc experiments")
    parser.add_argument("--jobs", type=int, default=1, help="--dvc: parallel queue workers")
    args = parser.parse_args()
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    unknown = sorted(set(samplers) - set(SAMPLERS))
    if unknown:
        parser.error(f"unknown samplers {unknown}; known: {', '.join(SAMPLERS)}")
    try:
        p = bench_params(args.threshold)
    except UserError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    started = time.perf_counter()
    results, header = in_process(p, samplers=samplers, model=args.model, rows=args.rows)
    print(header)
    print(f"in-process: prepare + featurize once, then resample + fit + score per sampler ({args.metric} first)\n")
    print_table(results, metric=args.metric)
    print_ranking(results, metric=args.metric)
    print(f"\nin-process total: {time.perf_counter() - started:.1f} s")
    if args.dvc:
        dvc_recipe(samplers=samplers, jobs=args.jobs)


if __name__ == "__main__":
    main()
