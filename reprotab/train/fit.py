"""Training: fit the chosen model on featurized rows and build the served model once.

The core of the train stage, without file IO. Tuned params are merged over
`hyperparameters.<model>` and each override is logged. Rows are resampled (training rows only)
before the fit; the validation split serves early stopping, calibration and the threshold
(reprotab/model/decision.py); the test split is never seen here. Continued training starts from a
previous model's estimator after `load_previous` has checked it fits this run.

`refit` (train.refit) then refits the featurizer and the estimator on train + validation,
keeping what was decided on validation with the train-only model: the threshold, the
calibrator, and with early stopping the number of rounds, scaled up by the row ratio (more rows
at the same learning rate support proportionally more rounds; the usual practice when refitting
boosters on all rows). The calibrator was fitted on the train-only model's probabilities, so on
the refit model it is an approximation. The test split stays untouched either way. One
module (about 300 lines): fit and refit share every helper, and the model card is built from
what they return.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab import paths
from reprotab.data.tables import frame_hash, release_arrow_memory
from reprotab.errors import UserError, problem
from reprotab.model.bundle import FORMAT_VERSION
from reprotab.model.decision import fit_decision
from reprotab.model.featurizer import fit_featurizer, one_hot_groups
from reprotab.model.schema import Schema, encode_target
from reprotab.model.served import TabularModel, library_versions, load
from reprotab.params.sections import FeaturizeParams, SamplingParams, TrainParams
from reprotab.train.families import AUTO, ENSEMBLE, MODELS, build_estimator, fit_estimator, spec_of
from reprotab.train.sampling import balance
from reprotab.tune.best import BestParams

LIBRARIES = ("scikit-learn", "xgboost-cpu", "lightgbm", "catboost", "imbalanced-learn", "pandas", "numpy", "dvc")
log = logging.getLogger(__name__)


def trained_family(model: str, tuning: BestParams) -> str:
    """The family train fits: params' `model`, or with model auto the one tune's search chose
    (with model ensemble, tune's record must hold the blend it chose)."""
    if model == ENSEMBLE:
        if tuning.model in MODELS:  # the blend did not beat its best member on validation (tune.confirm)
            return tuning.model
        if tuning.model != ENSEMBLE or "members" not in tuning.params:
            raise UserError(
                problem(
                    paths.BEST_PARAMS,
                    "holds no ensemble, which model: ensemble needs from tune's search",
                    tuning.model,
                    "Run the tune stage first (dvc repro), with tuner optuna or random",
                )
            )
        return model
    if model != AUTO:
        return model
    chosen = tuning.model
    if chosen not in MODELS:
        raise UserError(
            problem(
                paths.BEST_PARAMS,
                "names no model family, which model: auto needs from tune's search",
                chosen,
                "Run the tune stage first (dvc repro), with tuner optuna or random",
            )
        )
    assert chosen is not None
    return chosen


def merge_hyperparameters(*, defaults: dict[str, Any], tuned: Mapping[str, Any]) -> dict[str, Any]:
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
    extra_rows: tuple[pd.DataFrame, np.ndarray, np.ndarray] | None = None,
) -> tuple[TabularModel, dict[str, Any]]:
    """Fit on already-featurized training rows (resampled first if asked), then calibrate and
    choose the threshold on the featurized validation rows. The saved model has no sampler, so
    predictions never resample. `previous` is an estimator to continue training from."""
    settings = settings or TrainParams(threshold=None, early_stopping_rounds=None, refit=False)  # a plain fit
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
    X, y, weights = append_rows(X, y, extra_rows)
    held = None
    if validation is not None and len(validation):
        held = (validation.drop(columns=[schema.target]), encode_target(validation[schema.target], schema))
    rounds = settings.early_stopping_rounds
    if rounds and held is None:
        raise UserError(problem("train.early_stopping_rounds", "needs rows in the validation split", rounds))
    spec = spec_of(model)
    if rounds and spec.early_stopping is None:
        log.info("%s has no early stopping; train.early_stopping_rounds is ignored", model)
    if previous is not None:
        before = spec.size(previous)
        estimator = spec.continue_training(estimator, previous, X, y, held, rounds)
        summary["continued_from_size"] = before
        log.info("continued %s from %d to %d trees/rounds", model, before, spec.size(estimator))
    else:
        kept = fit_estimator(
            estimator, X, y, model=model, eval_set=held, early_stopping_rounds=rounds, sample_weight=weights
        )
        if kept is not None:
            summary["best_iteration"] = kept
            log.info("early stopping kept %d of %s rounds", kept, hyperparameters.get("n_estimators", "default"))
    summary["size"] = spec.size(estimator)
    summary.update(spec.describe(estimator))
    threshold, calibrator = None, None
    if schema.task == "classification" and held is not None:
        threshold, calibrator, decided = fit_decision(
            schema=schema, proba=estimator.predict_proba(held[0]), y=held[1], settings=settings
        )
        summary.update(decided)
    served = TabularModel.from_fitted(
        featurizer=featurizer,
        estimator=estimator,
        family=model,
        schema=schema,
        threshold=threshold,
        calibrator=calibrator,
    )
    return served, summary


def append_rows(
    X: pd.DataFrame, y: np.ndarray, extra: tuple[pd.DataFrame, np.ndarray, np.ndarray] | None
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None]:
    """`fit`'s `extra_rows` (featurized rows, encoded targets, sample weights; the pseudo-labels of
    reprotab/train/pseudo_labeling.py) join the training rows after resampling, so a sampler never takes
    them for real minority rows. Real rows weigh 1; without extra rows there are no weights at all."""
    if extra is None or not len(extra[1]):
        return X, y, None
    rows, targets, weights = extra
    joined = pd.concat([X.reset_index(drop=True), rows[list(X.columns)].reset_index(drop=True)], ignore_index=True)
    return joined, np.concatenate([y, targets]), np.concatenate([np.ones(len(y)), np.asarray(weights, dtype=float)])


def refit(
    fitted: TabularModel,
    summary: dict[str, Any],
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    featurize: FeaturizeParams,
    model: str,
    hyperparameters: dict[str, Any],
    seed: int,
    sampler: str = "none",
    sampling: SamplingParams | None = None,
    test: pd.DataFrame | None = None,
) -> tuple[TabularModel, dict[str, Any], pd.DataFrame]:
    """The same model refitted on the raw train + validation rows (featurizer included), with the
    threshold and calibrator chosen on validation by `fitted`; returns the new model, the summary
    with what changed, and the featurized rows it was fitted on. With `test` (train.refit all),
    the test rows join them: every labelled row. Rounds scale by all rows over the training split's."""
    schema = fitted.schema
    splits = {"train": train, "validation": validation, **({"test": test} if test is not None else {})}
    counts = {name: len(frame) for name, frame in splits.items()}
    rows = pd.concat(list(splits.values()), ignore_index=True)
    del train, validation, test, splits  # passed inline by train_run: the concatenation is then the only raw copy
    release_arrow_memory()  # the splits were read from Parquet: their buffers go back now, not at exit
    featurizer, X = fit_featurizer(rows, schema=schema, config=featurize, seed=seed)  # cross-fitted, not fit+transform
    y = encode_target(rows[schema.target], schema)
    target = rows[schema.target].to_numpy()
    del rows  # from here on only the featurized rows are needed
    release_arrow_memory()
    check_training_classes(y, schema)
    spec = spec_of(model)
    settings = spec.refit_settings(dict(hyperparameters), summary, len(y) / counts["train"])
    estimator = build_estimator(model=model, task=schema.task, hyperparameters=settings, seed=seed)
    X_fit, y_fit, balanced = balance(
        X=X,
        y=y,
        task=schema.task,
        one_hot=one_hot_groups(featurizer),
        sampler=sampler,
        config=sampling or SamplingParams(),
        seed=seed,
    )
    estimator.fit(X_fit, y_fit)
    log.info("refitted %s on %s: %d rows (train alone %d)", model, " + ".join(counts), len(y), counts["train"])
    refitted = {
        **summary,
        "refit": {
            "rows": counts,
            "resampled_rows": balanced["training_rows_resampled"],
            "n_estimators": settings.get("n_estimators"),
            **spec.describe(estimator),  # the first fit's (its kept rounds) stays beside
        },
        "size": spec.size(estimator),
    }
    served = TabularModel.from_fitted(
        featurizer=featurizer,
        estimator=estimator,
        family=model,
        schema=schema,
        threshold=fitted.threshold,
        calibrator=fitted.calibrator,
    )
    X[schema.target] = target
    return served, refitted, X


def metadata(
    *,
    model: str,
    schema: Schema,
    hyperparameters: dict[str, Any],
    features: pd.DataFrame,
    tuning: BestParams,
    trained_on: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The model card. `trained_on`: the splits whose rows fitted the shipped model and their
    counts (default: the training split only).

    It names what made the model by content (hyperparameters, library versions, the hash of the
    rows it was fitted on), not by the commit checked out: a card that named HEAD would differ on
    every checkout, so a committed `dvc.lock` could never be reproduced byte for byte. The code
    and data hashes are in `dvc.lock`; the commit is the one the registry's tag points at."""
    trained_on = trained_on or {"train": len(features)}
    return {
        "model": model,
        "task": schema.task,
        "target": schema.target,
        "features": {"numeric": list(schema.numeric), "categorical": list(schema.categorical)},
        "model_features": [c for c in features.columns if c != schema.target],
        "classes": list(schema.classes),
        "positive_class": schema.positive_class,
        "hyperparameters": hyperparameters,
        "format_version": FORMAT_VERSION,
        "tuned_by": tuning.tuner,
        "trained_on": list(trained_on),
        "trained_on_rows": trained_on,
        "training_rows": len(features),
        "training_data_hash": frame_hash(features),
        "libraries": library_versions(LIBRARIES),
    }


def load_previous(
    path: str | Path, *, model: str, schema: Schema, feature_names: list[str], output: str | Path | None = None
) -> Any:
    """The estimator of a previous model to continue from, after checking it fits this run.

    Only read, never written: the continued model goes to `output` (models/model.zip),
    which therefore cannot be the source (DVC removes it before train runs)."""
    where = "train.init_model"
    path = Path(path)
    if output is not None and path.resolve() == Path(output).resolve():
        raise UserError(
            problem(
                where,
                "cannot be train's own output (DVC removes it before train runs)",
                str(path),
                "Copy it first: dvc get . models/model.zip --rev <commit> -o models/previous.zip",
            )
        )
    if not path.is_file():
        raise UserError(
            problem(
                where,
                "file not found",
                str(path),
                "Get a previous model first: dvc get . models/model.zip --rev <commit> -o models/previous.zip",
            )
        )
    previous = load(path, where=where)
    old = previous.schema
    differences = []
    if old.task != schema.task:
        differences.append(f"task {old.task} (now {schema.task})")
    elif previous.family != model:
        differences.append(f"model {previous.family} (now {model})")
    if list(old.classes) != list(schema.classes):
        differences.append(f"classes {list(old.classes)} (now {list(schema.classes)})")
    old_names = previous.feature_names
    if old_names != feature_names:
        gone, new = sorted(set(old_names) - set(feature_names)), sorted(set(feature_names) - set(old_names))
        differences.append(f"features (missing now: {gone or 'none'}; new: {new or 'none'})")
    if differences:
        raise UserError(problem(where, "was trained on something else: " + "; ".join(differences), str(path)))
    return previous.estimator
