"""The table's schema as prepare found it: which columns are features of which kind, the
target, its classes and the positive class. Written by prepare, read by every later stage,
and copied into the model metadata so a model can check the rows it is given."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reprotab.errors import UserError, problem


@dataclass(frozen=True)
class Schema:
    task: str
    target: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    id_column: str | None = None
    classes: tuple[Any, ...] = field(default=())
    positive_class: Any = None
    # columns of the training table that are never features (data.drop_columns, empty or constant
    # ones): a missing feature's rename is never proposed from them
    ignored: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @classmethod
    def infer(
        cls,
        frame: pd.DataFrame,
        *,
        task: str,
        target: str,
        id_column: str | None,
        categorical: tuple[str, ...] = (),
        positive_class: Any = None,
        ignored: tuple[str, ...] = (),
    ) -> Schema:
        """Numbers and booleans are numeric; text, categories and the named columns are categorical."""
        features = [c for c in frame.columns if c not in (target, id_column)]
        is_cat = {
            c: c in categorical or not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
            for c in features
        }
        classes: tuple[Any, ...] = ()
        if task == "classification":
            classes = tuple(_native(v) for v in _sorted(frame[target].unique().tolist()))
            positive_class = positive_class_of(frame[target].astype(str).value_counts(), classes, positive_class)
        return cls(
            task=task,
            target=target,
            id_column=id_column,
            numeric=tuple(c for c in features if not is_cat[c]),
            categorical=tuple(c for c in features if is_cat[c]),
            classes=classes,
            positive_class=positive_class,
            ignored=tuple(map(str, ignored)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "classes": list(self.classes),
            "ignored": list(self.ignored),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Schema:
        return cls(
            **{
                **raw,
                "numeric": tuple(raw["numeric"]),
                "categorical": tuple(raw["categorical"]),
                "classes": tuple(raw["classes"]),
                "ignored": tuple(raw.get("ignored", ())),
            }
        )


def positive_class_of(counts: pd.Series, classes: tuple[Any, ...], wanted: Any) -> Any:
    """The class whose probability ROC-AUC and friends score, for binary targets only.

    Given in params, or 1/True when the classes are 0/1 or booleans, else the minority class
    (`counts`: rows per class, indexed by the class as text).
    """
    if len(classes) != 2:
        if wanted is not None:
            raise UserError(
                problem(
                    "data.positive_class",
                    "applies to binary targets only",
                    wanted,
                    f"The target has {len(classes)} classes",
                )
            )
        return None
    if wanted is not None:
        match = [c for c in classes if str(c) == str(wanted)]
        if not match:
            raise UserError(problem("data.positive_class", f"must be one of the classes {list(classes)}", wanted))
        return match[0]
    if set(map(str, classes)) in ({"0", "1"}, {"False", "True"}):
        return classes[1]
    return next(c for c in classes if str(c) == counts.idxmin())


def _sorted(values: list[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by text so the order is still stable
        return sorted(values, key=str)


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def label_text(value: Any) -> str:
    """A class label as text, whole numbers alike whether stored as 1 or 1.0 (a CSV column with
    a missing label reads its integer classes as floats)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def encode_target(values: pd.Series, schema: Schema) -> np.ndarray:
    """Class labels → indices into `schema.classes` (what every booster expects)."""
    if schema.task == "regression":
        return values.to_numpy(dtype=float)
    index = {label_text(c): i for i, c in enumerate(schema.classes)}
    unknown = sorted({label_text(v) for v in values} - set(index))
    if unknown:
        raise UserError(problem(f"target '{schema.target}'", f"has classes unseen in training {list(index)}", unknown))
    return np.array([index[label_text(v)] for v in values], dtype=int)
