"""train: fit the chosen model on the training features and save one model that takes raw rows.

Reads   data/features/{train.parquet,featurizer.joblib}, data/prepared/schema.json,
        models/best_params.json
Writes  models/model.joblib (a TabularModel: featurizer + estimator), models/model.json (metadata),
        reports/train/metrics.json (the sampler used and why, class balance, resampled rows)
Params  model, seed, hyperparameters, train, sampler, sampling

Tuned params (from tune) are merged over `hyperparameters.<model>` and the merge is logged, so a reader
of the log knows exactly which value came from where.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import subprocess
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.pipeline import Pipeline

from stages.data import atomic_path, frame_hash, read_json, write_json
from stages.estimators import TabularModel, build_estimator, encode_target
from stages.params import SamplingParams, load_stage_params
from stages.preprocessing import one_hot_groups
from stages.runner import stage_main
from stages.sampling import balance
from stages.schema import Schema

PARAMS = ("model", "seed", "hyperparameters", "train", "sampler", "sampling")
LIBRARIES = ("scikit-learn", "xgboost-cpu", "lightgbm", "imbalanced-learn", "pandas", "numpy", "dvc")
log = logging.getLogger(__name__)


def merge_hyperparameters(*, defaults: dict[str, Any], tuned: dict[str, Any]) -> dict[str, Any]:
    """Tuned values win over params.yaml; each override is logged."""
    for name, value in tuned.items():
        if name in defaults and defaults[name] != value:
            log.info("train: %s = %r from tune (params.yaml has %r)", name, value, defaults[name])
        elif name not in defaults:
            log.info("train: %s = %r from tune", name, value)
    return {**defaults, **tuned}


def fit(
    *,
    features: pd.DataFrame,
    schema: Schema,
    featurizer: Any,
    model: str,
    hyperparameters: dict[str, Any],
    seed: int,
    sampler: str = "none",
    sampling: SamplingParams | None = None,
) -> tuple[TabularModel, dict[str, Any]]:
    """Fit on already-featurized training rows (resampled first if asked) and wrap the estimator
    with its featurizer; the saved model has no sampler, so predictions never resample."""
    estimator = build_estimator(model=model, task=schema.task, hyperparameters=hyperparameters, seed=seed)
    X, y, summary = balance(
        X=features.drop(columns=[schema.target]),
        y=encode_target(features[schema.target], schema),
        task=schema.task,
        one_hot=one_hot_groups(featurizer),
        sampler=sampler,
        config=sampling or SamplingParams(),
        seed=seed,
    )
    estimator.fit(X, y)
    pipeline = Pipeline([("features", featurizer), ("model", estimator)])
    return TabularModel(pipeline=pipeline, schema=schema), summary


def metadata(
    *, model: str, schema: Schema, hyperparameters: dict[str, Any], features: pd.DataFrame, tuning: dict[str, Any]
) -> dict[str, Any]:
    return {
        "model": model,
        "task": schema.task,
        "target": schema.target,
        "features": {"numeric": list(schema.numeric), "categorical": list(schema.categorical)},
        "model_features": [c for c in features.columns if c != schema.target],
        "classes": list(schema.classes),
        "positive_class": schema.positive_class,
        "hyperparameters": hyperparameters,
        "tuned_by": tuning.get("tuner"),
        "training_rows": len(features),
        "training_data_hash": frame_hash(features),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "git_commit": _git_commit(),
    }


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
    hyperparameters = merge_hyperparameters(
        defaults=getattr(params.hyperparameters, params.model), tuned=tuning.get("params", {})
    )
    model, balancing = fit(
        features=features,
        schema=schema,
        featurizer=joblib.load(Path(args.features) / "featurizer.joblib"),
        model=params.model,
        hyperparameters=hyperparameters,
        seed=params.seed,
        sampler=params.sampler,
        sampling=params.sampling,
    )
    meta = metadata(
        model=params.model, schema=schema, hyperparameters=hyperparameters, features=features, tuning=tuning
    )
    params.record_reads()
    out = Path(args.out_dir)
    with atomic_path(out / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    write_json({**meta, "balancing": balancing}, out / "model.json")
    write_json(balancing, args.metrics)
    log.info("%s %s fitted on %d rows × %d features", params.model, schema.task, len(features), features.shape[1] - 1)


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


if __name__ == "__main__":
    main()
