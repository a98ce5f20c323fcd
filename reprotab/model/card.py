"""models/model.json, the model card, as a typed record with one writer (train) and one reader.

The card says what made the model by content: the family and its hyperparameters, the rows it
was fitted on (splits, counts, a hash), the library versions, the data files behind them. It
never names the commit checked out, so it is identical on every checkout and `dvc.lock`
reproduces byte for byte; the commit is the one the registry's tag points at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from reprotab import paths
from reprotab.data.tables import read_json, write_json
from reprotab.errors import UserError, problem


@dataclass(frozen=True)
class ModelCard:
    model: str  # the family fitted
    task: str
    target: str
    features: dict[str, list[str]]  # raw features: numeric, categorical
    model_features: list[str]  # after featurizing
    classes: list[Any]
    positive_class: Any
    hyperparameters: dict[str, Any]
    format_version: int
    tuned_by: str | None
    trained_on: list[str]  # the splits whose rows fitted the shipped model
    trained_on_rows: dict[str, int]
    training_rows: int
    training_data_hash: str
    libraries: dict[str, str | None]
    threshold: float | None = None
    training: dict[str, Any] = field(default_factory=dict)  # train's summary (reports/train/metrics.json)
    data: dict[str, Any] | None = None  # the data files behind the splits (prepare's summary)
    init_model: dict[str, Any] | None = None  # train.init_model: the model continued, with its hash
    # train.refit all: the model the test split judged (its file and the rows that fitted it); the
    # shipped model's own rows are trained_on_rows
    judged: dict[str, Any] | None = None
    engine: dict[str, Any] | None = (
        None  # engine dask: workers, threads, part files (a different count is a different run)
    )

    @property
    def judged_on(self) -> list[str]:
        """The splits whose rows fitted the model evaluate and the gate judge."""
        return list(self.judged["trained_on_rows"]) if self.judged else list(self.trained_on)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = paths.MODEL_META) -> ModelCard:
        if not isinstance(data, Mapping):
            fix = "Re-run the train stage (dvc repro) to write a current model card"
            raise UserError(problem(where, "is not a model card: not a JSON object", type(data).__name__, fix))
        known = {f.name for f in fields(cls)}
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            fix = "Re-run the train stage (dvc repro) to write a current model card"
            raise UserError(problem(where, f"is not a model card: missing {', '.join(missing)}", None, fix))
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        return cls.from_dict(read_json(path), where=str(path))

    @classmethod
    def beside(cls, model_path: str | Path | None) -> ModelCard | None:
        """The card of a model file (models/model.zip → models/model.json; the card itself is
        taken as is), or None when there is none or it is not a card (a model fetched on its own,
        an older layout): callers show what they can without it."""
        if model_path is None:
            return None
        path = Path(model_path).with_suffix(".json")
        try:
            return cls.read(path)
        except (OSError, ValueError, TypeError, UserError):
            return None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        return {k: v for k, v in out.items() if v is not None or k in ("positive_class", "tuned_by", "threshold")}

    def write(self, path: str | Path) -> None:
        write_json(self.to_dict(), path)
