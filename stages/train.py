"""train: fit the chosen model on the training features and save one model that takes raw rows.

Reads   data/features/{train,validation}.parquet, data/features/featurizer.joblib,
        data/prepared/schema.json, models/best_params.json, reports/prepare/summary.json; with
        train.refit also data/prepared/{train,validation}.parquet (the raw rows the featurizer is
        refitted on); with train.pseudo_labeling.enabled also data.unlabeled_path and the id column
        of data/prepared/{train,validation,test}.parquet (unlabeled rows already in a split are
        dropped, so no test row is ever pseudo-labeled)
Writes  models/model.joblib (the served model: featurizer + estimator + threshold + calibrator),
        models/model.json (metadata, format version, the data files that trained it, copied
        from prepare's summary), reports/train/metrics.json (the sampler used
        and why, resampled rows, kept rounds, the threshold and its validation score)
Params  model (auto: the family named in best_params.json), seed, hyperparameters, train,
        sampler, sampling, featurize (train.refit refits the featurizer), data (unlabeled_path)

The logic is reprotab/train/fit.py. `train.init_model` continues a previous model; that file
is only read.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import joblib

from reprotab.data.tables import file_hash, read_json, read_parquet, write_json
from reprotab.model import served
from reprotab.model.schema import Schema
from reprotab.params.loader import hyperparameters_for, load_stage_params
from reprotab.runner import stage_main
from reprotab.train.fit import load_previous, merge_hyperparameters, metadata, trained_family
from reprotab.train.run import parquet_splits, train_model

PARAMS = ("model", "seed", "hyperparameters", "train", "sampler", "sampling", "featurize", "data")
log = logging.getLogger(__name__)


@stage_main("train")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fit the model; save it with its preprocessing.")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--schema", default="data/prepared/schema.json")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--best-params", default="models/best_params.json")
    parser.add_argument("--prepare-summary", default="reports/prepare/summary.json")
    parser.add_argument("--out-dir", default="models")
    parser.add_argument("--metrics", default="reports/train/metrics.json")
    args = parser.parse_args(argv)
    params = load_stage_params("train", PARAMS)
    schema = Schema.from_dict(read_json(args.schema))
    tuning = read_json(args.best_params)
    family = trained_family(params.model, tuning)  # model auto: the family tune chose
    defaults = hyperparameters_for(params.hyperparameters, model=family, task=schema.task)
    hyperparameters = merge_hyperparameters(defaults=defaults, tuned=tuning.get("params", {}))
    settings, out = params.train, Path(args.out_dir)
    featurizer = joblib.load(Path(args.features) / "featurizer.joblib")
    previous = None
    if settings.init_model:
        previous = load_previous(
            settings.init_model,
            model=family,
            schema=schema,
            feature_names=[str(n) for n in featurizer.get_feature_names_out()],
            output=out / "model.joblib",
        )
    model, summary, features, trained_on = train_model(  # splits passed inline: a refit can free them
        family=family,
        features=read_parquet(Path(args.features) / "train.parquet"),
        validation=read_parquet(Path(args.features) / "validation.parquet"),
        schema=schema,
        featurizer=featurizer,
        hyperparameters=hyperparameters,
        params=params,
        read_split=parquet_splits(Path(args.prepared)),
        previous=previous,
    )
    meta = metadata(
        model=family,
        schema=schema,
        hyperparameters=hyperparameters,
        features=features,
        tuning=tuning,
        trained_on=trained_on,
    )
    prepared = Path(args.prepare_summary)
    if prepared.is_file():  # which data files (reference and batches, with hashes) trained the model
        meta["data"] = read_json(prepared).get("data")
    if settings.init_model:
        meta["init_model"] = {"path": settings.init_model, "sha256": file_hash(settings.init_model)}
    params.record_reads()
    served.save(model, out / "model.joblib")
    write_json({**meta, "threshold": model.threshold, "training": summary}, out / "model.json")
    write_json(summary, args.metrics)
    log.info("%s %s fitted on %d rows × %d features", family, schema.task, len(features), features.shape[1] - 1)


if __name__ == "__main__":
    main()
