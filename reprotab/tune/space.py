"""Search spaces: a params space as Optuna suggestions, and checked against the estimator first.

With `model: auto` (and `model: ensemble`) a trial first draws its family (Optuna parameter `model`), then that family's
space under prefixed names (`xgboost.max_depth`), so no two families share a distribution;
`trial_point` and `decode` are the only places that know the naming.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from reprotab.errors import UserError, problem
from reprotab.params.names import SEARCHES_FAMILIES
from reprotab.params.sections import Distribution
from reprotab.train.families import MODELS, build_estimator


def suggest(trial: optuna.Trial, name: str, spec: Distribution | tuple[Any, ...]) -> Any:
    """One value for `name` from a grid list or a distribution."""
    if not isinstance(spec, Distribution):
        return trial.suggest_categorical(name, list(spec))
    if spec.choices is not None:
        return trial.suggest_categorical(name, list(spec.choices))
    low, high = spec.bounds()
    if spec.integer:
        step = spec.step or 1
        assert isinstance(low, int) and isinstance(high, int) and isinstance(step, int)  # what `integer` means
        return trial.suggest_int(name, low, high, step=step, log=spec.log)
    return trial.suggest_float(name, low, high, step=spec.step, log=spec.log)


def trial_point(trial: optuna.Trial, *, model: str, spaces: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The family and hyperparameters one trial tries; `spaces` maps each searched family to its space."""
    if model not in SEARCHES_FAMILIES:
        return model, {name: suggest(trial, name, spec) for name, spec in spaces[model].items()}
    family = trial.suggest_categorical("model", list(spaces))
    return family, {name: suggest(trial, f"{family}.{name}", spec) for name, spec in spaces[family].items()}


def decode(point: dict[str, Any], *, model: str) -> tuple[str, dict[str, Any]]:
    """A trial's Optuna params as (family, hyperparameters): `trial_point` read back."""
    if model not in SEARCHES_FAMILIES:
        return model, dict(point)
    family = point["model"]
    prefix = f"{family}."
    return family, {name.removeprefix(prefix): value for name, value in point.items() if name.startswith(prefix)}


def encode(family: str, hyperparameters: dict[str, Any], *, model: str) -> dict[str, Any]:
    """Hyperparameters of one family as a trial's Optuna params (to enqueue a starting point)."""
    if model not in SEARCHES_FAMILIES:
        return dict(hyperparameters)
    return {"model": family, **{f"{family}.{name}": value for name, value in hyperparameters.items()}}


def check_space(*, space: dict[str, Any], where: str, search: Any, model: str) -> None:
    """Every searched name is a parameter of the estimator, and every edge value is accepted by it.

    Each distinct value (grid values, range ends, choices) is tried once on a few hundred fold
    rows with a tiny ensemble, so a typo fails in a second with the name and value, not after
    an hour of trials."""
    task = search.schema.task
    known = MODELS[model].parameter_names(task)
    problems = [problem(f"{where}.{name}", f"is not a parameter of {model}") for name in space if name not in known]
    fold = search.folds[0]
    sample = slice(0, min(len(fold.y), 300))
    for name, spec in space.items():
        if name not in known:
            continue
        for value in _edge_values(spec):
            small = {"n_estimators": 3} if name != "n_estimators" and "n_estimators" in known else {}
            try:
                estimator = build_estimator(
                    model=model, task=task, hyperparameters={**search.bases[model], **small, name: value}, seed=0
                )
                estimator.fit(fold.X.iloc[sample], fold.y[sample])
            except Exception as exc:  # each library raises its own types for a bad value
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                problems.append(problem(f"{where}.{name}", f"value is rejected by {model} ({reason})", value))
    if problems:
        raise UserError("\n".join(problems))


def starting_point(space: dict[str, Any], *, model: str, task: str, base: dict[str, Any]) -> dict[str, Any]:
    """The shipped hyperparameters (`base`, else the library's own default) as a point of the
    space: a search tries it first, so its best is never an untried guess below the untuned model.

    A value outside a range is clipped into it (lightgbm's reg_lambda 0 becomes the log range's
    low end) and snapped to its step; a value no range can hold (the forest's unlimited max_depth,
    max_features 'sqrt') and a choice the space does not offer are left to the sampler."""
    defaults = MODELS[model].defaults(task)
    point: dict[str, Any] = {}
    for name, spec in space.items():
        value = base.get(name, defaults.get(name))
        if not isinstance(spec, Distribution):
            continue
        if spec.choices is not None:
            if value in spec.choices:
                point[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low, high = spec.bounds()
        value = min(max(value, low), high)
        if spec.step is not None:
            value = min(low + round((value - low) / spec.step) * spec.step, high)
        point[name] = round(value) if spec.integer else float(value)
    return point


def _edge_values(spec: Distribution | tuple[Any, ...]) -> list[Any]:
    if not isinstance(spec, Distribution):
        return list(spec)
    return list(spec.choices) if spec.choices is not None else [spec.low, spec.high]


def grid_size(space: dict[str, tuple[Any, ...]]) -> int:
    return math.prod(len(values) for values in space.values())
