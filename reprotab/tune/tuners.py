"""The tuner registry: each `tuner:` name, where its search space lives and its Optuna parts.

Kept apart from reprotab/tune/search.py so that validating params (which reads the names) does not
import Optuna; the samplers are built only when a search runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tuner:
    """How one `tuner:` value searches: which part of params holds its space, and its Optuna parts."""

    kind: str  # "grid" (value lists in tune.grid) or "space" (distributions in tune.space)
    sampler: Callable[[dict[str, Any], int], Any]  # (space, seed) -> optuna sampler
    prunes: bool


def _grid(space: dict[str, Any], seed: int) -> Any:
    import optuna

    return optuna.samplers.GridSampler(space, seed=seed)


def _random(space: dict[str, Any], seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _tpe(space: dict[str, Any], seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


TUNERS: dict[str, Tuner] = {
    "grid": Tuner("grid", _grid, prunes=False),  # every point of tune.grid.<model>
    "random": Tuner("space", _random, prunes=False),  # tune.n_trials random draws from tune.space.<model>
    "optuna": Tuner("space", _tpe, prunes=True),  # seeded TPE over tune.space.<model>, median pruning
}
