"""The model registry: each `model:` name, its estimators, and how it fits, stops early and continues.

`MODELS` implements exactly the names reprotab/params/names.py declares (params validation reads
those, so loading params imports no estimator code; a test holds the two equal, and the
strategy-key table of docs/params.md to them), so adding a model is one `ModelSpec` entry, one
`Booster` under the same name (reprotab/model/boosters.py: how the model file stores it), its name,
and its `hyperparameters` block in params.yaml, never a copied branch (`model: auto` then
searches it too).
Estimator classes are imported only when a model is built, so a stage that never fits XGBoost does
not pay for importing it.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reprotab.errors import UserError, did_you_mean, problem
from reprotab.params import names


def _xgboost_early_stopping(
    estimator: Any, X: Any, y: Any, eval_set: tuple[Any, Any], rounds: int, **fit_kwargs: Any
) -> int:
    estimator.set_params(early_stopping_rounds=rounds)
    estimator.fit(X, y, eval_set=[eval_set], verbose=False, **fit_kwargs)
    return int(estimator.best_iteration) + 1  # 0-based index → rounds kept


def _lightgbm_early_stopping(
    estimator: Any, X: Any, y: Any, eval_set: tuple[Any, Any], rounds: int, **fit_kwargs: Any
) -> int:
    import lightgbm

    estimator.fit(
        X,
        y,
        eval_X=eval_set[0],
        eval_y=eval_set[1],
        callbacks=[lightgbm.early_stopping(rounds, verbose=False)],
        **fit_kwargs,
    )
    return int(estimator.best_iteration_ or estimator.n_estimators)


def _xgboost_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    if eval_set is not None and rounds:
        new.set_params(early_stopping_rounds=rounds)
    new.fit(X, y, xgb_model=old, eval_set=[eval_set] if eval_set else None, verbose=False)
    return new


def _lightgbm_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    import lightgbm

    stop = [lightgbm.early_stopping(rounds, verbose=False)] if eval_set is not None and rounds else None
    held = {"eval_X": eval_set[0], "eval_y": eval_set[1]} if eval_set is not None else {}
    new.fit(X, y, init_model=old, callbacks=stop, **held)
    return new


def _catboost_early_stopping(
    estimator: Any, X: Any, y: Any, eval_set: tuple[Any, Any], rounds: int, **fit_kwargs: Any
) -> int:
    estimator.fit(X, y, eval_set=eval_set, early_stopping_rounds=rounds, use_best_model=True, **fit_kwargs)
    return int(estimator.get_best_iteration()) + 1  # the model is cut to its best iteration


def _catboost_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    stop = {"eval_set": eval_set, "early_stopping_rounds": rounds} if eval_set is not None and rounds else {}
    new.fit(X, y, init_model=old, **stop)
    return new


def _no_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    raise UserError(
        problem(
            "train.init_model",
            f"cannot continue a {type(new).__name__} (it has no rounds or trees to add)",
            None,
            "Retrain from scratch: train.init_model null, or reprotab retrain --mode refit",
        )
    )


def _forest_continue(new: Any, old: Any, X: Any, y: Any, eval_set: Any, rounds: int | None) -> Any:
    """More trees on the new rows: a copy of the old forest with warm_start (old trees kept)."""
    grown = copy.deepcopy(old)
    grown.set_params(warm_start=True, n_estimators=len(old.estimators_) + new.get_params()["n_estimators"])
    return grown.fit(X, y)


def _native(estimator: Any, attribute: str) -> Any:
    """The library's booster of a scikit-learn wrapper, or the booster itself (a stored model's)."""
    if not hasattr(estimator, attribute):
        return estimator
    found = getattr(estimator, attribute)
    return found() if callable(found) else found


def _scaled_rounds(hyperparameters: dict[str, Any], summary: Any, ratio: float) -> dict[str, Any]:
    """The rounds early stopping kept, scaled up by the refit's row ratio (more rows at the same
    learning rate support proportionally more rounds)."""
    kept = summary.get("best_iteration")
    return {**hyperparameters, "n_estimators": max(1, round(kept * ratio))} if kept else dict(hyperparameters)


EarlyStopping = Callable[..., "int | None"]  # (estimator, X, y, eval_set, rounds, **fit kwargs such as sample_weight)
Continue = Callable[[Any, Any, Any, Any, Any, "int | None"], Any]  # old: the stored model's native estimator


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
    # what the library applies where its scikit-learn wrapper reports None (XGBoost's get_params), so
    # a search can start from the model a user actually gets
    unset_defaults: dict[str, Any] = field(default_factory=dict)
    # the wrapper's get_params() lists only the settings passed to it (CatBoost): its parameters
    # are then the constructor's named arguments
    explicit_params_only: bool = False
    # the hyperparameters a refit on more rows uses: (hyperparameters, train's summary, row ratio)
    refit_settings: Callable[[dict[str, Any], Any, float], dict[str, Any]] = _scaled_rounds
    describe: Callable[[Any], dict[str, Any]] = lambda estimator: {}  # what the model card adds about a fit

    def defaults(self, task: str) -> dict[str, Any]:
        """The estimator's default settings, with the library's values where the wrapper says None."""
        own = self.estimator_class(task)().get_params()
        return {**own, **{k: v for k, v in self.unset_defaults.items() if own.get(k) is None}}

    @property
    def continues(self) -> bool:
        """Whether `train.init_model` (and `retrain --mode continue`) can add to a fitted model."""
        return self.continue_training is not _no_continue

    def parameter_names(self, task: str) -> set[str]:
        """Every hyperparameter the estimator accepts."""
        cls = self.estimator_class(task)
        if self.explicit_params_only:
            return set(inspect.signature(cls).parameters) - {"args", "kwargs"}
        return set(cls().get_params())

    def estimator_class(self, task: str) -> type:
        module, name = (self.classifier if task == "classification" else self.regressor).split(":")
        return getattr(importlib.import_module(module), name)


MODELS: dict[str, ModelSpec] = {
    "random_forest": ModelSpec(
        "sklearn.ensemble:RandomForestClassifier",
        "sklearn.ensemble:RandomForestRegressor",
    ),
    "xgboost": ModelSpec(
        "xgboost:XGBClassifier",
        "xgboost:XGBRegressor",
        {"verbosity": 0},
        _xgboost_early_stopping,
        _xgboost_continue,
        lambda estimator: _native(estimator, "get_booster").num_boosted_rounds(),
        unset_defaults={  # XGBoost's documented tree-booster defaults (3.x): its wrapper reports each as None
            "learning_rate": 0.3,
            "max_depth": 6,
            "min_child_weight": 1.0,
            "subsample": 1.0,
            "colsample_bytree": 1.0,
            "colsample_bylevel": 1.0,
            "colsample_bynode": 1.0,
            "reg_lambda": 1.0,
            "reg_alpha": 0.0,
            "gamma": 0.0,
        },
    ),
    "lightgbm": ModelSpec(
        "lightgbm:LGBMClassifier",
        "lightgbm:LGBMRegressor",
        {"verbose": -1},
        _lightgbm_early_stopping,
        _lightgbm_continue,
        lambda estimator: _native(estimator, "booster_").current_iteration(),
    ),
    "catboost": ModelSpec(
        "catboost:CatBoostClassifier",
        "catboost:CatBoostRegressor",
        {"verbose": 0, "allow_writing_files": False},  # no catboost_info/ folder in the working directory
        _catboost_early_stopping,
        _catboost_continue,
        lambda estimator: int(estimator.tree_count_),
        unset_defaults={"n_estimators": 1000, "depth": 6, "l2_leaf_reg": 3.0, "colsample_bylevel": 1.0},
        explicit_params_only=True,
    ),
    "linear": ModelSpec(
        "reprotab.train.linear:LinearClassifier",
        "reprotab.train.linear:LinearRegressor",
        continue_training=_no_continue,
        size=lambda estimator: 1,
    ),
}


AUTO = names.AUTO  # `model: auto`: tune's search also chooses the family, among every entry of MODELS
ENSEMBLE = names.ENSEMBLE


def _ensemble_spec() -> ModelSpec:
    from reprotab.train import ensemble

    return ModelSpec(
        "reprotab.train.ensemble:EnsembleClassifier",
        "reprotab.train.ensemble:EnsembleRegressor",
        early_stopping=ensemble.early_stopping,
        continue_training=_no_continue,
        size=lambda estimator: int(sum(estimator.sizes_)),
        refit_settings=ensemble.refit_settings,
        describe=lambda estimator: {"ensemble": {"members": estimator.describe()}},
    )


def spec_of(model: str) -> ModelSpec:
    """The spec of a family, or of `ensemble` (a blend of families: not itself in MODELS, so
    nothing that loops over the families tries to build one without members)."""
    if model == ENSEMBLE:
        return _ensemble_spec()
    return MODELS[model]


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
    sample_weight: Any = None,
) -> int | None:
    """Fit, stopping early on `eval_set` when the model can; returns the rounds kept (None if not).
    `sample_weight` (one per training row) goes to the estimator's fit; every registered model takes it."""
    weights = {} if sample_weight is None else {"sample_weight": sample_weight}
    stop = spec_of(model).early_stopping
    if stop is None or eval_set is None or not early_stopping_rounds:
        estimator.fit(X, y, **weights)
        return None
    return stop(estimator, X, y, eval_set, early_stopping_rounds, **weights)


def hyperparameter_problems(*, model: str, task: str, hyperparameters: dict[str, Any]) -> list[str]:
    """Names in `hyperparameters.<model>` the estimator does not accept, each with a did-you-mean."""
    known = spec_of(model).parameter_names(task)
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
    spec = spec_of(model)
    settings = {**hyperparameters, **spec.fixed, "random_state": seed}
    try:
        return spec.estimator_class(task)(**settings)
    except (TypeError, ValueError) as exc:
        raise UserError(
            problem(f"hyperparameters.{model}", f"rejected by the estimator ({exc})", hyperparameters)
        ) from None


def storable(estimator: Any, *, model: str, task: str) -> None:
    """The fitted estimator goes into the model bundle and back, or the bundle's refusal is raised:
    a setting the bundle cannot hold (CatBoost's depth-wise trees, an exponentiated loss) is found
    by validate, not after a whole fit."""
    from reprotab.model.boosters import BOOSTERS

    kind = "regression" if task == "regression" else "binary"
    shape: dict[str, Any] = {"kind": kind, "n_classes": 0 if task == "regression" else 2, "n_features": 3}
    booster = BOOSTERS[model].from_estimator(estimator, **shape)
    BOOSTERS[model].from_bytes(booster.to_bytes(), **shape)


def hyperparameter_value_problems(*, model: str, task: str, hyperparameters: dict[str, Any]) -> list[str]:
    """Values in `hyperparameters.<model>` the estimator rejects, found before any stage runs.

    scikit-learn estimators declare their constraints (`_validate_params`); the boosters check
    values only when fitting, so they get a tiny fit on 40 synthetic rows with 2 rounds."""
    problems = hyperparameter_problems(model=model, task=task, hyperparameters=hyperparameters)
    if problems:
        return problems
    where = f"hyperparameters.{model}"
    try:
        estimator = build_estimator(model=model, task=task, hyperparameters=hyperparameters, seed=0)
        if getattr(type(estimator), "_parameter_constraints", None):  # scikit-learn's own estimators
            estimator._validate_params()
        else:
            rounds = hyperparameters.get("n_estimators", 1)  # the tiny fit below replaces it, so check it here
            if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
                return [problem(f"{where}.n_estimators", "must be an int in the range [1, inf)", rounds)]
            rng = np.random.default_rng(0)
            X = rng.normal(size=(40, 3))
            y = (X[:, 0] > 0).astype(int) if task == "classification" else X[:, 0]
            estimator.set_params(n_estimators=2).fit(X, y)
            storable(estimator, model=model, task=task)
    except UserError as exc:
        return [str(exc)]
    except Exception as exc:  # each library raises its own types for a bad value
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        named = re.match(r"The '(\w+)' parameter of \w+ (must be .+?)\. Got (.+) instead\.$", reason)
        if named:  # scikit-learn names the parameter and the rule: say it in our grammar
            name, rule, _ = named.groups()
            return [problem(f"{where}.{name}", rule, hyperparameters.get(name))]
        return [problem(where, f"rejected by {model} ({reason})", dict(hyperparameters))]
    return []
