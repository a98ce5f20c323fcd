"""Benchmark the tuners on the full demo data and print the figures.

    .venv/bin/python bench/tuning.py [--model lightgbm] [--metric roc_auc] [--max-optuna-trials 60]

Same model, metric, folds and search ranges (params.yaml's `tune.grid` / `tune.space`) for
each tuner. Grid runs its whole grid; random and optuna get the same number of trials as the
grid has points (the same budget). Then optuna keeps going (up to --max-optuna-trials) and the
script prints how long it took to reach grid search's best score, against the target of at
most a quarter of grid's time. Folds are built once per run, as the tune stage does.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from reprotab.data.prepare import prepare_with  # noqa: E402
from reprotab.params.loader import hyperparameters_for, load_params  # noqa: E402
from reprotab.stats.metrics import better  # noqa: E402
from reprotab.tune import search as tuning  # noqa: E402


def search_for(p, splits, schema, *, model: str, metric: str) -> tuning.Search:
    folds = tuning.build_folds(
        train=splits["train"],
        validation=splits["validation"],
        schema=schema,
        cv_folds=p.tune.cv_folds,
        featurize=p.featurize,
        sampler=p.sampler,
        sampling=p.sampling,
        seed=p.seed,
    )
    base = hyperparameters_for(p.hyperparameters, model=model, task=p.task)
    return tuning.Search(folds, schema, model, {model: base}, metric, p.seed, p.tune.early_stopping_rounds)


def timed_study(search, *, tuner: str, space, trials: int, config):
    started = time.perf_counter()
    study = tuning.run(
        search=search,
        tuner=tuner,
        spaces={search.model: space},
        config=config.model_copy(update={"n_trials": trials, "timeout_minutes": None}),
        storage=None,
        name=f"bench-{tuner}",
    )
    return study, time.perf_counter() - started


def time_to_reach(study, target: float, metric: str) -> float | None:
    """Seconds from the study's first trial start until a trial scored at least `target`."""
    finished = [t for t in study.trials if t.value is not None]
    start = min(t.datetime_start for t in study.trials)
    for trial in sorted(finished, key=lambda t: t.datetime_complete):
        if trial.value == target or better(metric, trial.value, target):
            return (trial.datetime_complete - start).total_seconds()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lightgbm", choices=["random_forest", "xgboost", "lightgbm"])
    parser.add_argument("--metric", default="roc_auc")
    parser.add_argument("--max-optuna-trials", type=int, default=60)
    args = parser.parse_args()
    p = load_params(ROOT / "params.yaml")
    frame = pd.read_parquet(ROOT / p.data.path)
    splits, schema, _ = prepare_with(frame, p)
    search = search_for(p, splits, schema, model=args.model, metric=args.metric)
    grid = p.tune.search_space(kind="grid", model=args.model, task=p.task)
    space = p.tune.search_space(kind="space", model=args.model, task=p.task)
    budget = tuning.grid_size(grid)
    print(f"{args.model}, {args.metric}, {p.tune.cv_folds}-fold CV on {len(splits['train'])} rows; budget {budget}")
    print(f"{'tuner':<8} {'trials':>6} {'best CV ' + args.metric:>16} {'wall s':>8}")
    results = {}
    for tuner, tuner_space in (("grid", grid), ("random", space), ("optuna", space)):
        study, seconds = timed_study(search, tuner=tuner, space=tuner_space, trials=budget, config=p.tune)
        results[tuner] = (study, seconds)
        print(f"{tuner:<8} {len(study.trials):>6} {study.best_value:>16.4f} {seconds:>8.1f}")
    grid_study, grid_seconds = results["grid"]
    long_study, _ = timed_study(search, tuner="optuna", space=space, trials=args.max_optuna_trials, config=p.tune)
    reach = time_to_reach(long_study, grid_study.best_value, args.metric)
    if reach is None:
        print(f"optuna did not reach grid's best {grid_study.best_value:.4f} in {args.max_optuna_trials} trials")
    else:
        share = reach / grid_seconds
        verdict = "met" if share <= 0.25 else "NOT met"
        print(
            f"optuna reached grid's best {grid_study.best_value:.4f} after {reach:.1f} s = {share:.0%} of grid's "
            f"{grid_seconds:.1f} s (target ≤ 25 %: {verdict})"
        )


if __name__ == "__main__":
    main()
