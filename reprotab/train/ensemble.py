"""`model: ensemble`: a weighted blend of the search's best trials, as one estimator.

Tune chooses the members and their weights by greedy forward selection with replacement over the
trials' out-of-fold predictions (reprotab/tune/blend.py, Caruana et al. 2004); what reaches train
is a list of members, each a family, its hyperparameters and a weight. This estimator fits every
member on the same featurized rows (each stopping early on the validation rows when its family
can) and averages their class probabilities (classification) or values (regression) with the
weights, so the threshold and the calibrator are chosen on the blend's validation scores exactly
as for one model, and the served model is one bundle (reprotab/model/boosters.py `EnsembleBooster`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from reprotab import paths
from reprotab.errors import UserError, problem

RERUN = "Run the tune stage again with model: ensemble (dvc repro)"
MAX_MEMBERS = 50  # greedy selection takes 25 rounds: more members than that is not a blend tune made


def check_members(members: Any, *, where: str = f"{paths.BEST_PARAMS} params.members") -> list[dict[str, Any]]:
    """The members as plain records (tune's blend, read back from models/best_params.json), or one
    UserError naming what is wrong."""
    from reprotab.params.names import MODELS

    if not isinstance(members, Sequence) or isinstance(members, str) or not 1 <= len(members) <= MAX_MEMBERS:
        raise UserError(problem(where, f"must be a list of 1 to {MAX_MEMBERS} members", members, RERUN))
    out = []
    for index, member in enumerate(members):
        here = f"{where}[{index}]"
        if not isinstance(member, Mapping):
            raise UserError(problem(here, "must be a mapping of model, hyperparameters and weight", member, RERUN))
        unknown = sorted(set(member) - {"model", "hyperparameters", "weight", "trial"})
        if unknown:
            raise UserError(problem(here, f"has unknown keys {unknown}; a member holds model, hyperparameters, weight"))
        family, weight = member.get("model"), member.get("weight")
        if family not in MODELS:
            raise UserError(problem(f"{here}.model", "is not a model family", family))
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1:
            raise UserError(problem(f"{here}.weight", "must be a number in (0, 1]", weight))
        if not isinstance(member.get("hyperparameters", {}), Mapping):
            raise UserError(problem(f"{here}.hyperparameters", "must be a mapping", member.get("hyperparameters")))
        out.append({"model": family, "hyperparameters": dict(member.get("hyperparameters", {})), "weight": weight})
    total = sum(m["weight"] for m in out)
    if abs(total - 1.0) > 1e-6:
        raise UserError(problem(where, "has weights that do not sum to 1", round(total, 9)))
    return out


class _Ensemble(BaseEstimator):
    task = ""

    def __init__(self, members: Any = None, random_state: Any = None) -> None:
        self.members, self.random_state = members, random_state

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        eval_set: tuple[Any, Any] | None = None,
        early_stopping_rounds: int | None = None,
    ) -> _Ensemble:
        from reprotab.train.families import MODELS, build_estimator, fit_estimator

        members = check_members(self.members)
        self.estimators_, self.families_, self.best_iterations_ = [], [], []
        for member in members:
            family = member["model"]
            estimator = build_estimator(
                model=family, task=self.task, hyperparameters=member["hyperparameters"], seed=self.random_state or 0
            )
            kept = fit_estimator(
                estimator,
                X,
                y,
                model=family,
                eval_set=eval_set,
                early_stopping_rounds=early_stopping_rounds,
                sample_weight=sample_weight,
            )
            self.estimators_.append(estimator)
            self.families_.append(family)
            self.best_iterations_.append(kept)
            self.sizes_ = [MODELS[f].size(e) for f, e in zip(self.families_, self.estimators_, strict=True)]
        self.weights_ = np.array([m["weight"] for m in members], dtype=np.float64)
        if self.task == "classification":
            self.classes_ = np.unique(np.asarray(y))
        return self

    def describe(self) -> list[dict[str, Any]]:
        """Each member as the model card lists it: family, weight, trees or rounds, rounds kept."""
        return [
            {"model": family, "weight": float(weight), "size": size, "best_iteration": kept}
            for family, weight, size, kept in zip(
                self.families_, self.weights_, self.sizes_, self.best_iterations_, strict=True
            )
        ]


class EnsembleClassifier(ClassifierMixin, _Ensemble):
    """The weighted mean of the members' class probabilities."""

    task = "classification"

    def predict_proba(self, X: Any) -> np.ndarray:
        total = np.zeros((len(X), len(self.classes_)))
        for estimator, weight in zip(self.estimators_, self.weights_, strict=True):
            proba = np.zeros_like(total)
            proba[:, np.searchsorted(self.classes_, estimator.classes_)] = estimator.predict_proba(X)
            total += weight * proba
        return total

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class EnsembleRegressor(RegressorMixin, _Ensemble):
    """The weighted mean of the members' predictions."""

    task = "regression"

    def predict(self, X: Any) -> np.ndarray:
        return sum(
            weight * np.asarray(estimator.predict(X), dtype=np.float64)
            for estimator, weight in zip(self.estimators_, self.weights_, strict=True)
        )


def early_stopping(estimator: Any, X: Any, y: Any, eval_set: Any, rounds: int, **fit_kwargs: Any) -> int | None:
    """Every member that can stops early on `eval_set`; the rounds each kept are in `describe()`."""
    estimator.fit(X, y, eval_set=eval_set, early_stopping_rounds=rounds, **fit_kwargs)
    return None


def refit_settings(hyperparameters: dict[str, Any], summary: Mapping[str, Any], ratio: float) -> dict[str, Any]:
    """Each member's rounds kept on validation, scaled by the refit's row ratio (as for one booster)."""
    kept = [m.get("best_iteration") for m in summary.get("ensemble", {}).get("members", [])]
    members = check_members(hyperparameters.get("members"))
    if len(kept) == len(members):
        for member, rounds in zip(members, kept, strict=True):
            if rounds is not None:
                member["hyperparameters"]["n_estimators"] = max(1, round(rounds * ratio))
    return {**hyperparameters, "members": members}
