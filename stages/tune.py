"""tune: search hyperparameters for the chosen metric and hand the best to train.

Reads   data/prepared/{train,validation}.parquet, data/prepared/schema.json
Writes  models/best_params.json (read by train), models/study.journal (the Optuna study, kept
        between runs so more trials continue it), reports/tune/metrics.json (best score),
        reports/tune/trials.csv, reports/tune/plots/ (history and parameter importance)
Params  tuner, model, metric, seed, tune, hyperparameters, featurize, sampler, sampling, engine and
        dask (engine dask: the trials run on the cluster's workers, `tune.n_jobs` at a time, on a
        hashed sample of `dask.sample_rows` training and validation rows; reprotab/tune/cluster.py)

`tuner: none` searches nothing and says so; train then uses `hyperparameters.<model>` as
given. With `model: auto` the search also chooses the family; best_params.json names it and
train fits it. With `model: ensemble` it keeps every trial's out-of-fold predictions and chooses
a weighted blend of the best trials (reprotab/tune/blend.py); best_params.json lists the members
and train fits each. How the search works is in reprotab/tune/search.py. A second worker (another shell or
machine with the same params, data and a shared `tune.storage`) joins a running search with
`python -m stages.tune --worker`: it adds trials and writes nothing else.
"""

from __future__ import annotations

import argparse
import functools
import logging
from pathlib import Path

import pandas as pd

from reprotab import paths
from reprotab.data.tables import read_json
from reprotab.engine.cluster import engine_client
from reprotab.engine.partitions import read_split
from reprotab.model.schema import Schema
from reprotab.params.loader import StageParams, load_stage_params
from reprotab.runner import stage_main
from reprotab.tune import report as tune_report
from reprotab.tune.best import BestParams

PARAMS = (
    "tuner",
    "model",
    "metric",
    "seed",
    "tune",
    "hyperparameters",
    "featurize",
    "sampler",
    "sampling",
    "engine",
    "dask",
)
log = logging.getLogger(__name__)


def whole_splits(prepared: Path, params: StageParams, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(prepared / "train.parquet"), pd.read_parquet(prepared / "validation.parquet")


def read_splits(prepared: Path, params: StageParams, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame]:
    """engine dask: each trial runs in one worker, on a hashed sample of `dask.sample_rows` rows."""
    train, validation = (
        read_split(
            prepared / f"{name}.parquet",
            sample_rows=params.dask.sample_rows,
            seed=params.seed,
            id_column=schema.id_column,
            where=f"{name} split",
        )
        for name in ("train", "validation")
    )
    return train, validation


@stage_main("tune")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Search hyperparameters for train.")
    parser.add_argument("--prepared", default=paths.PREPARED)
    parser.add_argument("--out", default=paths.BEST_PARAMS)
    parser.add_argument("--study", default="models/study.journal", help="local study file when tune.storage is null")
    parser.add_argument("--reports", default="reports/tune")
    parser.add_argument("--worker", action="store_true", help="only add trials to the shared study")
    args = parser.parse_args(argv)
    params = load_stage_params("tune", PARAMS)
    reports = Path(args.reports)
    if params.tuner == "none":
        result = tune_report.no_search(model=params.model)
        BestParams.from_dict(result).write(args.out)
        tune_report.write_reports(
            reports, metrics={"trials": 0}, trials=pd.DataFrame(columns=["number", "value", "state"])
        )
        log.info("%s", result["note"])
        return

    from reprotab.tune import search as tuning  # imports Optuna: only when a search runs
    from reprotab.tune.run import run_search

    prepared = Path(args.prepared)
    schema = Schema.from_dict(read_json(prepared / "schema.json"))
    train, validation = (read_splits if params.engine == "dask" else whole_splits)(prepared, params, schema)
    Path(args.study).parent.mkdir(parents=True, exist_ok=True)
    reopen = functools.partial(tuning.open_storage, params.tune.storage, str(Path(args.study).resolve()))
    with engine_client(params.engine, params.dask) as client:  # engine dask: trials on the workers
        study, best = run_search(
            train=train,
            validation=validation,
            schema=schema,
            params=params,
            storage=reopen(),
            study_file=args.study,
            worker=args.worker,
            client=client,
            reopen=reopen,
        )
    if best is None:
        log.info("worker done; the study holds %d trials", len(study.trials))
        return
    BestParams.from_dict(best).write(args.out)
    tune_report.write_reports(
        reports,
        metrics={
            "best_score": best["best_score"],
            "trials": sum(best["trials"].values()),
            **tune_report.family_scores(best),  # model auto: each family's best, side by side in dvc exp show
        },
        trials=tuning.trials_table(study),
        history=tuning.history(study),
        importances=tuning.importances(study),
        metric=params.metric,
    )
    shipped = best.get("confirmed", {}).get("chosen")
    log.info(
        "best %s %.4f (trial %d of %d); %s ships with %s%s",
        params.metric,
        best["best_score"],
        best["best_trial"],
        len(study.trials),
        best["model"],
        best["params"] or "params.yaml's hyperparameters",
        f" (tune.confirm chose the {shipped} configuration on the validation split)" if shipped else "",
    )


if __name__ == "__main__":
    main()
