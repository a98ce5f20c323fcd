"""The model registry and the shipped model object.

`MODELS` maps each `model:` name to its classifier and regressor factories, so adding a
model is one table entry, never a copied branch. `TabularModel` is what train saves: the
fitted featurizer and estimator in one sklearn Pipeline plus the schema, so it takes raw
feature columns and returns labels in the user's own classes; serving cannot drift from
training because there is no second copy of the preprocessing.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from stages.errors import UserError, did_you_mean, problem
from stages.schema import Schema


def _xgboost_early_stopping(estimator: Any, X: Any, y: Any, eval_set: tuple[Any, Any], rounds: int) -> int:
    estimator.set_params(early_stopping_rounds=rounds)
    estimator.fit(X, y, eval_set=[eval_set], verbose=False)
    return int(estimator.best_iteration) + 1  # 0-based index → rounds kept


def _lightgbm_early_stopping(estimator: Any, X: Any, y: Any, eval_set: tuple[Any, Any], rounds: int) -> int:
    import lightgbm

    estimator.fit(
        X, y, eval_X=eval_set[0], eval_y=eval_set[1], callbacks=[lightgbm.early_stopping(rounds, verbose=False)]
    )
    return int(estimator.best_iteration_ or estimator.n_estimators)


def _xgboost_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    if eval_set is not None and rounds:
        new.set_params(early_stopping_rounds=rounds)
    new.fit(X, y, xgb_model=old.get_booster(), eval_set=[eval_set] if eval_set else None, verbose=False)
    return new


def _lightgbm_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    import lightgbm

    stop = [lightgbm.early_stopping(rounds, verbose=False)] if eval_set is not None and rounds else None
    held = {"eval_X": eval_set[0], "eval_y": eval_set[1]} if eval_set is not None else {}
    new.fit(X, y, init_model=old.booster_, callbacks=stop, **held)
    return new


def _forest_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    """More trees on the new rows: a copy of the old forest with warm_start (old trees kept)."""
    grown = copy.deepcopy(old)
    grown.set_params(warm_start=True, n_estimators=len(old.estimators_) + new.get_params()["n_estimators"])
    return grown.fit(X, y)


EarlyStopping = Callable[[Any, Any, Any, tuple[Any, Any], int], int]
Continue = Callable[[Any, Any, Any, Any, Any, "int | None"], Any]


@dataclass(frozen=True)
class ModelSpec:
    """Where a model's estimators live, the settings the project always passes them, and how it
    stops early on held-out rows (None: it cannot, e.g. a random forest)."""

    classifier: str  # "module:Class"
    regressor: str
    fixed: dict[str, Any] = field(default_factory=dict)
    early_stopping: EarlyStopping | None = None
    continue_training: Continue = _forest_continue  # new estimator, loaded one, X, y, eval_set, rounds
    size: Callable[[Any], int] = lambda estimator: len(estimator.estimators_)  # trees or boosting rounds

    def estimator_class(self, task: str) -> type:
        module, name = (self.classifier if task == "classification" else self.regressor).split(":")
        return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelSpec] = {
    "random_forest": ModelSpec("sklearn.ensemble:RandomForestClassifier", "sklearn.ensemble:RandomForestRegressor"),
    "xgboost": ModelSpec(
        "xgboost:XGBClassifier",
        "xgboost:XGBRegressor",
        {"verbosity": 0},
        _xgboost_early_stopping,
        _xgboost_continue,
        lambda estimator: estimator.get_booster().num_boosted_rounds(),
    ),
    "lightgbm": ModelSpec(
        "lightgbm:LGBMClassifier",
        "lightgbm:LGBMRegressor",
        {"verbose": -1},
        _lightgbm_early_stopping,
        _lightgbm_continue,
        lambda estimator: estimator.booster_.current_iteration(),
    ),
}


def model_name(estimator: Any, task: str) -> str | None:
    """The registry name of a fitted estimator (None when it is none of ours)."""
    return next((name for name, spec in MODELS.items() if type(estimator) is spec.estimator_class(task)), None)


def fit_estimator(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    model: str,
    eval_set: tuple[Any, Any] | None = None,
    early_stopping_rounds: int | None = None,
) -> int | None:
    """Fit, stopping early on `eval_set` when the model can; returns the rounds kept (None if not)."""
    stop = MODELS[model].early_stopping
    if stop is None or eval_set is None or not early_stopping_rounds:
        estimator.fit(X, y)
        return None
    return stop(estimator, X, y, eval_set, early_stopping_rounds)


def hyperparameter_problems(*, model: str, task: str, hyperparameters: dict[str, Any]) -> list[str]:
    """Names in `hyperparameters.<model>` the estimator does not accept, each with a did-you-mean."""
    known = set(MODELS[model].estimator_class(task)().get_params())
    return [
        problem(
            f"hyperparameters.{model}.{name}",
            f"is not a parameter of {model}",
            None,
            "See the estimator's documentation for its parameters",
        )
        + did_you_mean(name, known)
        for name in hyperparameters
        if name not in known
    ]


def build_estimator(*, model: str, task: str, hyperparameters: dict[str, Any], seed: int) -> Any:
    """An unfitted estimator; `random_state` comes from the top-level seed."""
    problems = hyperparameter_problems(model=model, task=task, hyperparameters=hyperparameters)
    if problems:
        raise UserError("\n".join(problems))
    spec = MODELS[model]
    settings = {**hyperparameters, **spec.fixed, "random_state": seed}
    try:
        return spec.estimator_class(task)(**settings)
    except (TypeError, ValueError) as exc:
        raise UserError(
            problem(f"hyperparameters.{model}", f"rejected by the estimator ({exc})", hyperparameters)
        ) from None


class TabularModel:
    """Raw feature columns in, predictions out; the one object train saves and serving loads."""

    def __init__(
        self, *, pipeline: Pipeline, schema: Schema, threshold: float | None = None, calibrator: Any = None
    ) -> None:
        self.pipeline, self.schema, self.threshold, self.calibrator = pipeline, schema, threshold, calibrator

    @property
    def classes(self) -> np.ndarray:
        return np.array(self.schema.classes, dtype=object)

    def _features(self, rows: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.schema.features if c not in rows.columns]
        if missing:
            raise UserError(
                problem(
                    "input rows",
                    "lack feature columns the model was trained on",
                    ", ".join(missing),
                    "Pass every column listed in the model metadata",
                )
            )
        return rows[list(self.schema.features)]

    def predict_proba(self, rows: pd.DataFrame, *, calibrated: bool = True) -> np.ndarray:
        """Class probabilities, columns in `schema.classes` order; `calibrated=False` gives the
        estimator's own probabilities when a calibrator was fitted (for before/after curves)."""
        if self.schema.task != "classification":
            raise TypeError("predict_proba applies to classification models only")
        proba = np.asarray(self.pipeline.predict_proba(self._features(rows)), dtype=float)
        if calibrated and self.calibrator is not None:
            proba = self.calibrator.transform(proba)
        return proba

    def positive_index(self) -> int:
        return list(self.schema.classes).index(self.schema.positive_class)

    def predict_index(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted class indices; binary models apply the stored decision threshold."""
        proba = self.predict_proba(rows)
        if len(self.schema.classes) == 2 and self.threshold is not None:
            positive = self.positive_index()
            return np.where(proba[:, positive] >= self.threshold, positive, 1 - positive)
        return proba.argmax(axis=1)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Labels in the user's own classes, or numbers for regression."""
        if self.schema.task == "regression":
            return self.pipeline.predict(self._features(rows))
        return self.classes[self.predict_index(rows)]


def load_previous(path: str | Path, *, model: str, schema: Schema, feature_names: list[str]) -> Any:
    """The estimator of a previous model to continue from, after checking it fits this run.

    Only read, never written: the continued model goes to models/model.joblib."""
    where = "train.init_model"
    path = Path(path)
    if not path.is_file():
        raise UserError(
            problem(
                where,
                "file not found",
                str(path),
                "Get a previous model first: dvc get . models/model.joblib --rev <commit> -o models/previous.joblib",
            )
        )
    try:
        previous = joblib.load(path)
    except Exception as exc:  # a truncated or foreign pickle raises many types
        raise UserError(problem(where, f"cannot be loaded ({type(exc).__name__}: {exc})", str(path))) from None
    if not isinstance(previous, TabularModel):
        raise UserError(problem(where, "is not a model saved by the train stage", type(previous).__name__))
    old, estimator = previous.schema, previous.pipeline.named_steps["model"]
    differences = []
    if old.task != schema.task:
        differences.append(f"task {old.task} (now {schema.task})")
    elif model_name(estimator, old.task) != model:
        differences.append(f"model {model_name(estimator, old.task) or type(estimator).__name__} (now {model})")
    if list(old.classes) != list(schema.classes):
        differences.append(f"classes {list(old.classes)} (now {list(schema.classes)})")
    old_names = [str(n) for n in previous.pipeline.named_steps["features"].get_feature_names_out()]
    if old_names != feature_names:
        gone, new = sorted(set(old_names) - set(feature_names)), sorted(set(feature_names) - set(old_names))
        differences.append(f"features (missing now: {gone or 'none'}; new: {new or 'none'})")
    if differences:
        raise UserError(problem(where, "was trained on something else: " + "; ".join(differences), str(path)))
    return estimator


def encode_target(values: pd.Series, schema: Schema) -> np.ndarray:
    """Class labels → indices into `schema.classes` (what every booster expects)."""
    if schema.task == "regression":
        return values.to_numpy(dtype=float)
    index = {str(c): i for i, c in enumerate(schema.classes)}
    unknown = sorted({str(v) for v in values} - set(index))
    if unknown:
        raise UserError(problem(f"target '{schema.target}'", f"has classes unseen in training {list(index)}", unknown))
    return np.array([index[str(v)] for v in values], dtype=int)
