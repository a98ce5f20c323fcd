"""train: fit the chosen model on the training features and save one model that takes raw rows.

Reads   data/features/{train,validation}.parquet, data/features/featurizer.joblib,
        data/prepared/schema.json, models/best_params.json; with train.refit also
        data/prepared/{train,validation}.parquet (the raw rows the featurizer is refitted on)
Writes  models/model.joblib (the served model: featurizer + estimator + threshold + calibrator),
        models/model.json (metadata, format version), reports/train/metrics.json (the sampler used
        and why, resampled rows, kept rounds, the threshold and its validation score)
Params  model, seed, hyperparameters, train, sampler, sampling, featurize (train.refit refits the featurizer)

The logic is reprotab/training.py. `train.init_model` continues a previous model; that file
is only read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import joblib
import pandas as pd

from reprotab import served
from reprotab.data import read_json, write_json
from reprotab.params import hyperparameters_for, load_stage_params
from reprotab.runner import stage_main
from reprotab.schema import Schema
from reprotab.training import file_hash, fit, load_previous, merge_hyperparameters, metadata, refit

PARAMS = ("model", "seed", "hyperparameters", "train", "sampler", "sampling", "featurize")
log = logging.getLogger(__name__)


@stage_main("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fit the model; save it with its preprocessing.")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--schema", default="data/prepared/schema.json")
    parser.add_argument("--best-params", default="models/best_params.json")
    parser.add_argument("--out-dir", default="models")
    parser.add_argument("--metrics", default="reports/train/metrics.json")
    args = parser.parse_args(argv)
    params = load_stage_params("train", PARAMS)
    schema = Schema.from_dict(read_json(args.schema))
    features = pd.read_parquet(Path(args.features) / "train.parquet")
    tuning = read_json(args.best_params)
    defaults = hyperparameters_for(params.hyperparameters, model=params.model, task=schema.task)
    hyperparameters = merge_hyperparameters(defaults=defaults, tuned=tuning.get("params", {}))
    settings, out = params.train, Path(args.out_dir)
    featurizer = joblib.load(Path(args.features) / "featurizer.joblib")
    previous = None
    if settings.init_model:
        previous = load_previous(
            settings.init_model,
            model=params.model,
            schema=schema,
            feature_names=[str(n) for n in featurizer.get_feature_names_out()],
            output=out / "model.joblib",
        )
    model, summary = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model=params.model,
        hyperparameters=hyperparameters,
        seed=params.seed,
        sampler=params.sampler,
        sampling=params.sampling,
        validation=pd.read_parquet(Path(args.features) / "validation.parquet"),
        settings=settings,
        previous=previous,
    )
    trained_on = {"train": len(features)}
    if settings.refit:
        prepared = Path(args.schema).parent
        raw = {split: pd.read_parquet(prepared / f"{split}.parquet") for split in ("train", "validation")}
        model, summary, features = refit(
            model,
            summary,
            **raw,
            featurize=params.featurize,
            model=params.model,
            hyperparameters=hyperparameters,
            seed=params.seed,
            sampler=params.sampler,
            sampling=params.sampling,
        )
        trained_on = {split: len(rows) for split, rows in raw.items()}
    meta = metadata(
        model=params.model,
        schema=schema,
        hyperparameters=hyperparameters,
        features=features,
        tuning=tuning,
        trained_on=trained_on,
    )
    if settings.init_model:
        meta["init_model"] = {"path": settings.init_model, "sha256": file_hash(settings.init_model)}
    params.record_reads()
    served.save(model, out / "model.joblib")
    write_json({**meta, "threshold": model.threshold, "training": summary}, out / "model.json")
    write_json(summary, args.metrics)
    log.info("%s %s fitted on %d rows × %d features", params.model, schema.task, len(features), features.shape[1] - 1)


if __name__ == "__main__":
    main()
