"""models/best_params.json as a typed record: what tune hands to train, with one reader and one writer.

Train needs three things from it: the family (with `model: auto`, the one the search chose), the
tuned hyperparameters, and which tuner produced them (the model card's `tuned_by`). Everything
else the file holds (scores, trial counts, the study's name) is for people and `dvc exp show`, and
rides along in `details` untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reprotab import paths
from reprotab.data.tables import read_json, write_json
from reprotab.errors import UserError, problem

PATH = paths.BEST_PARAMS


@dataclass(frozen=True)
class BestParams:
    """Tune's result. `model` is None only when nothing named a family (never with a search)."""

    tuner: str
    model: str | None
    params: Mapping[str, Any]
    searched: bool
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = PATH) -> BestParams:
        """Validate the record's shape; anything else the file holds goes to `details`."""
        tuner, model, params = data.get("tuner"), data.get("model"), data.get("params", {})
        if not isinstance(tuner, str):
            raise UserError(problem(where, "has no tuner name", tuner, "Re-run the tune stage (dvc repro)"))
        if model is not None and not isinstance(model, str):
            raise UserError(problem(where, "names a model that is not a family name", model))
        if not isinstance(params, Mapping):
            raise UserError(problem(where, "holds params that are not a mapping", params))
        details = {k: v for k, v in data.items() if k not in ("tuner", "model", "params", "searched")}
        return cls(
            tuner=tuner,
            model=model,
            params=MappingProxyType(dict(params)),
            searched=bool(data.get("searched", False)),
            details=MappingProxyType(details),
        )

    @classmethod
    def read(cls, path: str | Path = PATH) -> BestParams:
        return cls.from_dict(read_json(path), where=str(path))

    def to_dict(self) -> dict[str, Any]:
        return {
            "tuner": self.tuner,
            "model": self.model,
            "searched": self.searched,
            "params": dict(self.params),
            **self.details,
        }

    def write(self, path: str | Path = PATH) -> None:
        write_json(self.to_dict(), path)
