"""train: fit the chosen model on the training features and save one model that takes raw rows.

Reads   data/features/{train.parquet,featurizer.joblib}, data/prepared/schema.json,
        models/best_params.json
Writes  models/model.joblib (a TabularModel: featurizer + estimator), models/model.json (metadata),
        reports/train/metrics.json (the sampler used and why, class balance, resampled rows,
        early stopping's kept rounds, the threshold and its validation score at 0.5 and at it)
Params  model, seed, hyperparameters, train, sampler, sampling

Tuned params (from tune) are merged over `hyperparameters.<model>` and the merge is logged, so
a reader of the log knows exactly which value came from where. The validation split serves
early stopping, calibration and the threshold (stages/decision.py); the test split is never
read here. `train.init_model` continues a previous model (boosters add rounds, a forest adds
trees); that file is only read.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import logging
import subprocess
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from stages.data import atomic_path, frame_hash, read_json, write_json
from stages.decision import decide
from stages.errors import UserError, problem
from stages.estimators import MODELS, TabularModel, build_estimator, encode_target, fit_estimator, load_previous
from stages.params import SamplingParams, TrainParams, load_stage_params
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


def check_training_classes(y: np.ndarray, schema: Schema) -> None:
    """Every class must be in the training split: a model cannot predict a class it never saw."""
    if schema.task != "classification":
        return
    missing = [schema.classes[k] for k in sorted(set(range(len(schema.classes))) - set(np.unique(y).tolist()))]
    if missing:
        raise UserError(
            problem(
                f"target '{schema.target}'",
                "has classes absent from the training split",
                missing,
                "Add rows of those classes, merge rare classes, or drop them from the table",
            )
        )


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
    validation: pd.DataFrame | None = None,
    settings: TrainParams | None = None,
    previous: Any = None,
) -> tuple[TabularModel, dict[str, Any]]:
    """Fit on already-featurized training rows (resampled first if asked), then calibrate and
    choose the threshold on the featurized validation rows. The saved model has no sampler, so
    predictions never resample. `previous` is an estimator to continue training from."""
    settings = settings or TrainParams(threshold=None)
    estimator = build_estimator(model=model, task=schema.task, hyperparameters=hyperparameters, seed=seed)
    y_train = encode_target(features[schema.target], schema)
    check_training_classes(y_train, schema)
    X, y, summary = balance(
        X=features.drop(columns=[schema.target]),
        y=y_train,
        task=schema.task,
        one_hot=one_hot_groups(featurizer),
        sampler=sampler,
        config=sampling or SamplingParams(),
        seed=seed,
    )
    held = None
    if validation is not None and len(validation):
        held = (validation.drop(columns=[schema.target]), encode_target(validation[schema.target], schema))
    rounds = settings.early_stopping_rounds
    if rounds and held is None:
        raise UserError(problem("train.early_stopping_rounds", "needs rows in the validation split", rounds))
    if rounds and MODELS[model].early_stopping is None:
        log.info("%s has no early stopping; train.early_stopping_rounds is ignored", model)
    spec = MODELS[model]
    if previous is not None:
        before = spec.size(previous)
        estimator = spec.continue_training(estimator, previous, X, y, held, rounds)
        summary["continued_from_size"] = before
        log.info("continued %s from %d to %d trees/rounds", model, before, spec.size(estimator))
    else:
        kept = fit_estimator(estimator, X, y, model=model, eval_set=held, early_stopping_rounds=rounds)
        if kept is not None:
            summary["best_iteration"] = kept
            log.info("early stopping kept %d of %s rounds", kept, hyperparameters.get("n_estimators", "default"))
    summary["size"] = spec.size(estimator)
    pipeline = Pipeline([("features", featurizer), ("model", estimator)])
    tabular = TabularModel(pipeline=pipeline, schema=schema)
    if schema.task == "classification" and held is not None:
        summary.update(decide(tabular, estimator=estimator, held=held, settings=settings))
    return tabular, summary


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
    validation = pd.read_parquet(Path(args.features) / "validation.parquet")
    tuning = read_json(args.best_params)
    hyperparameters = merge_hyperparameters(
        defaults=getattr(params.hyperparameters, params.model), tuned=tuning.get("params", {})
    )
    settings = params.train
    featurizer = joblib.load(Path(args.features) / "featurizer.joblib")
    previous = None
    if settings.init_model:
        out_path = Path(args.out_dir) / "model.joblib"
        if Path(settings.init_model).resolve() == out_path.resolve():
            raise UserError(
                problem(
                    "train.init_model",
                    "cannot be train's own output (DVC removes it before train runs)",
                    settings.init_model,
                    "Copy it first: dvc get . models/model.joblib --rev <commit> -o models/previous.joblib",
                )
            )
        names = [str(n) for n in featurizer.get_feature_names_out()]
        previous = load_previous(settings.init_model, model=params.model, schema=schema, feature_names=names)
    model, summary = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model=params.model,
        hyperparameters=hyperparameters,
        seed=params.seed,
        sampler=params.sampler,
        sampling=params.sampling,
        validation=validation,
        settings=settings,
        previous=previous,
    )
    meta = metadata(
        model=params.model, schema=schema, hyperparameters=hyperparameters, features=features, tuning=tuning
    )
    if settings.init_model:
        meta["init_model"] = {"path": settings.init_model, "sha256": file_hash(settings.init_model)}
    params.record_reads()
    out = Path(args.out_dir)
    with atomic_path(out / "model.joblib") as tmp:
        joblib.dump(model, tmp)
    write_json({**meta, "threshold": model.threshold, "training": summary}, out / "model.json")
    write_json(summary, args.metrics)
    log.info("%s %s fitted on %d rows × %d features", params.model, schema.task, len(features), features.shape[1] - 1)


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
