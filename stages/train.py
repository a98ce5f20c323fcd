"""train: featurize the training split, fit the chosen model, and save one model that takes raw rows.

Reads   data/prepared/{train,validation}.parquet, data/prepared/schema.json,
        models/best_params.json, reports/prepare/summary.json; with
        train.pseudo_labeling.enabled also data.unlabeled_path and the id column of
        data/prepared/{train,validation,test}.parquet (unlabeled rows already in a split are
        dropped, so no test row is ever pseudo-labeled); with train.refit all, the test split too,
        once the model the test split judges is fitted (the shipped model's last refit)
Writes  models/model.zip (the served model: featurizer + estimator + threshold + calibrator),
        models/judged.zip (the model evaluate and the gate judge on the test split: the same file,
        or with train.refit all the train + validation model, the shipped one having been refitted
        on every labelled row, test included),
        models/model.json (the model card: format version, hyperparameters, the data files that
        trained it, copied from prepare's summary), reports/train/metrics.json (the sampler used
        and why, resampled rows, kept rounds, the threshold and its validation score)
Params  model (auto: the family named in best_params.json), seed, hyperparameters, train,
        sampler, sampling, featurize (fitted here: on train, refitted on train + validation with
        train.refit), data (unlabeled_path), engine and dask (engine dask: XGBoost or LightGBM
        trained on the cluster from the prepared partitions; reprotab/engine/train.py)

The logic is reprotab/train/run.py (`run_train`). `train.init_model` continues a previous model;
that file is only read.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from dataclasses import replace
from pathlib import Path

from reprotab import paths
from reprotab.data.tables import read_json, write_json
from reprotab.engine.cluster import open_client
from reprotab.engine.train import run_train_dask
from reprotab.model import served
from reprotab.model.schema import Schema
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main
from reprotab.train.run import parquet_splits, run_train
from reprotab.tune.best import BestParams

PARAMS = ("model", "seed", "hyperparameters", "train", "sampler", "sampling", "featurize", "data", "engine", "dask")
log = logging.getLogger(__name__)


@stage_main("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Featurize and fit the model; save it with its preprocessing.")
    parser.add_argument("--prepared", default=paths.PREPARED)
    parser.add_argument("--best-params", default=paths.BEST_PARAMS)
    parser.add_argument("--prepare-summary", default=paths.PREPARE_SUMMARY)
    parser.add_argument("--out-dir", default="models")
    parser.add_argument("--metrics", default=paths.TRAIN_METRICS)
    args = parser.parse_args(argv)
    params = load_stage_params("train", PARAMS)
    prepared, out = Path(args.prepared), Path(args.out_dir)
    schema = Schema.from_dict(read_json(prepared / "schema.json"))
    best = BestParams.read(args.best_params)
    engine, cluster = params.engine, params.dask
    if engine == "dask":  # the same Trained record, fitted on the cluster (reprotab/engine/train.py)
        with open_client(cluster) as client:
            trained = run_train_dask(schema=schema, best=best, params=params, prepared=prepared, client=client)
    else:
        trained = run_train(
            schema=schema, best=best, params=params, read_split=parquet_splits(prepared), output=out / "model.zip"
        )
    card = trained.card
    summary_file = Path(args.prepare_summary)
    if summary_file.is_file():  # which data files (reference and batches, with hashes) trained the model
        card = replace(card, data=read_json(summary_file).get("data"))
    served.save(trained.model, out / "model.zip")
    if trained.judged is trained.model:  # the same bytes: the test split judges the model that ships
        shutil.copyfile(out / "model.zip", out / "judged.zip")
    else:  # train.refit all: the shipped model was refitted on every row, test included
        served.save(trained.judged, out / "judged.zip")
    card.write(out / "model.json")
    write_json(trained.summary, args.metrics)
    log.info(
        "%s %s fitted on %d rows × %d features",
        trained.family,
        schema.task,
        card.training_rows,
        len(card.model_features),
    )


if __name__ == "__main__":
    main()
