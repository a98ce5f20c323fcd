"""The fitted featurizer as data: a JSON plan, checked when read, applied with arrays and dict look-ups.

Training fits scikit-learn transformers (reprotab/model/featurizer.py); the served model never
runs them. `FeaturePlan.from_featurizer` reads what the fitted transformer learned (imputation
values, missing indicators, scaling, each categorical column's output position per category and
for an unseen one, target encodings) by asking it: the categories are probed through the
fitted encoders, so the plan holds their exact outputs, and the conversion then checks the plan
against the transformer on sample rows before it is used. `FeaturePlan.from_dict` is the only
way back from the file, and refuses anything out of shape or range with one message.

Applying it (`matrix`) takes numeric columns as floats and categorical columns as the text the
encoders compared (`to_levels`'s values: `str(value)`, `__missing__` for a missing one) and fills
one float32 row-major matrix, the layout the boosters read without a copy. Arithmetic follows
scikit-learn's: values, fills and scaling in float32.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from reprotab.model.featurizer import MISSING, _column_to_float, _column_to_levels
from reprotab.model.schema import Schema

FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
UNSEEN_PROBE = "\x00unseen\x00"  # a category no training value can be (probes the unseen-category output)
CHECK_NUMBERS = (float("nan"), 0.0, -1.5, 3.25, 1e6, -7e-3)  # numeric values of the conversion's check rows


class PlanError(ValueError):
    """A plan that is not well formed; the message says which part."""


@dataclass(frozen=True)
class OneHot:
    """One categorical column's one-hot group: its categories and the output offset (within the
    group, -1 = all zeros) of each, and of a category never seen."""

    column: str
    width: int
    categories: tuple[str, ...]
    offsets: tuple[int, ...]
    unseen: int

    @functools.cached_property
    def answers(self) -> dict[str, int]:
        """Category → output offset, built once per loaded model."""
        return dict(zip(self.categories, self.offsets, strict=True))


@dataclass(frozen=True)
class Target:
    """One categorical column's target encoding: per category its `width` values, and the values of
    a category never seen (the training mean)."""

    column: str
    width: int
    categories: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    unseen: tuple[float, ...]

    @functools.cached_property
    def answers(self) -> dict[str, int]:
        """Category → its row of `table`, built once per loaded model."""
        return {category: i for i, category in enumerate(self.categories)}

    @functools.cached_property
    def table(self) -> np.ndarray:
        """Every category's values, then the unseen category's, as one array."""
        return np.vstack([np.asarray(self.values, dtype=np.float64).reshape(-1, self.width), [self.unseen]])


@dataclass(frozen=True)
class FeaturePlan:
    numeric: tuple[str, ...]
    fill: tuple[float, ...]  # per numeric column, what a missing value becomes
    indicators: tuple[int, ...]  # numeric columns (positions) that get a 0/1 missing column
    scale_mean: tuple[float, ...] | None  # per numeric output (indicators included), or None: not scaled
    scale_std: tuple[float, ...] | None
    one_hot: tuple[OneHot, ...]
    target: tuple[Target, ...]
    names: tuple[str, ...]  # every output column, in order

    # ---- from the fitted transformer -----------------------------------------------------------

    @classmethod
    def from_featurizer(cls, featurizer: Any, schema: Schema) -> FeaturePlan:
        """The plan of a fitted `build_featurizer` transformer (see the module docstring)."""
        names = [str(n) for n in featurizer.get_feature_names_out()]
        parts = {name: (step, list(columns)) for name, step, columns in featurizer.transformers_ if name != "remainder"}
        numeric: tuple[str, ...] = ()
        fill: tuple[float, ...] = ()
        indicators: tuple[int, ...] = ()
        mean: tuple[float, ...] | None = None
        std: tuple[float, ...] | None = None
        if "numeric" in parts and parts["numeric"][1]:
            steps = parts["numeric"][0].named_steps
            numeric = tuple(map(str, parts["numeric"][1]))
            fill = tuple(float(np.float32(v)) for v in steps["impute"].statistics_)
            indicator = getattr(steps["impute"], "indicator_", None)
            indicators = tuple(int(i) for i in indicator.features_) if indicator is not None else ()
            if "scale" in steps:
                mean = tuple(float(v) for v in steps["scale"].mean_)
                std = tuple(float(v) for v in steps["scale"].scale_)
        one_hot: list[OneHot] = []
        if "categorical" in parts and parts["categorical"][1]:
            encoder, columns = parts["categorical"][0].named_steps["encode"], parts["categorical"][1]
            probed = _probe(encoder, columns)
            start = 0
            for k, column in enumerate(columns):
                categories = [str(c) for c in encoder.categories_[k]]
                rare = getattr(encoder, "infrequent_categories_", [None] * len(columns))[k]
                width = len(categories) - (len(rare) - 1 if rare is not None else 0)
                block = probed[:, start : start + width]
                offsets = [_hot(block[i]) for i in range(len(categories))]
                one_hot.append(OneHot(str(column), width, tuple(categories), tuple(offsets), _hot(block[-1])))
                start += width
        target: list[Target] = []
        if "target" in parts and parts["target"][1]:
            encoder, columns = parts["target"][0].named_steps["encode"], parts["target"][1]
            probed = _probe(encoder, columns)
            width = probed.shape[1] // len(columns)
            for k, column in enumerate(columns):
                categories = [str(c) for c in encoder.categories_[k]]
                block = probed[:, k * width : (k + 1) * width].astype(float)
                values = tuple(tuple(map(float, block[i])) for i in range(len(categories)))
                target.append(Target(str(column), width, tuple(categories), values, tuple(map(float, block[-1]))))
        plan = cls(numeric, fill, indicators, mean, std, tuple(one_hot), tuple(target), tuple(names))
        plan.check(schema)
        plan.check_against(featurizer)
        return plan

    def check_against(self, featurizer: Any) -> None:
        """RuntimeError unless the plan gives the fitted featurizer's features, bit for bit, on rows
        holding every category learnt, an unseen one, missing values and assorted numbers."""
        parts = self.parts
        n = max([len(p.categories) + 2 for p in parts] + [len(CHECK_NUMBERS)])
        rows: dict[str, list[Any]] = {}
        for j, column in enumerate(self.numeric):
            numbers: list[Any] = [*CHECK_NUMBERS, self.fill[j]]
            rows[column] = [numbers[(i + j) % len(numbers)] for i in range(n)]
        for p in parts:
            values: list[Any] = [*p.categories, None, UNSEEN_PROBE]
            rows[p.column] = [values[i % len(values)] for i in range(n)]
        frame = pd.DataFrame(rows)
        for column in self.numeric:
            frame[column] = frame[column].astype(float)
        frame = frame[[str(c) for c in featurizer.feature_names_in_]]
        expected = np.asarray(featurizer.transform(frame), dtype=np.float32)
        got = self.frame_matrix(frame)
        if expected.shape != got.shape or not np.array_equal(expected, got, equal_nan=True):
            raise RuntimeError("the featurizer plan differs from the fitted featurizer on its check rows")

    # ---- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        scale = None if self.scale_mean is None else {"mean": list(self.scale_mean), "std": list(self.scale_std or ())}
        return {
            "numeric": {"columns": list(self.numeric), "fill": list(self.fill), "indicators": list(self.indicators)},
            "scale": scale,
            "one_hot": [
                {
                    "column": g.column,
                    "width": g.width,
                    "categories": list(g.categories),
                    "offsets": list(g.offsets),
                    "unseen": g.unseen,
                }
                for g in self.one_hot
            ],
            "target": [
                {
                    "column": t.column,
                    "width": t.width,
                    "categories": list(t.categories),
                    "values": [list(v) for v in t.values],
                    "unseen": list(t.unseen),
                }
                for t in self.target
            ],
            "names": list(self.names),
        }

    @classmethod
    def from_dict(cls, raw: Any, schema: Schema) -> FeaturePlan:
        """The plan in `raw` (parsed JSON), or a PlanError naming what is wrong."""
        top = _object(raw, "featurizer", {"numeric", "scale", "one_hot", "target", "names"})
        numeric = _object(top["numeric"], "featurizer.numeric", {"columns", "fill", "indicators"})
        scale = top["scale"]
        if scale is not None:
            scale = _object(scale, "featurizer.scale", {"mean", "std"})
        one_hot = [
            _object(g, f"featurizer.one_hot[{i}]", {"column", "width", "categories", "offsets", "unseen"})
            for i, g in enumerate(_list(top["one_hot"], "featurizer.one_hot"))
        ]
        target = [
            _object(t, f"featurizer.target[{i}]", {"column", "width", "categories", "values", "unseen"})
            for i, t in enumerate(_list(top["target"], "featurizer.target"))
        ]
        plan = cls(
            numeric=tuple(_texts(numeric["columns"], "featurizer.numeric.columns")),
            fill=tuple(_floats(numeric["fill"], "featurizer.numeric.fill")),
            indicators=tuple(_ints(numeric["indicators"], "featurizer.numeric.indicators")),
            scale_mean=None if scale is None else tuple(_floats(scale["mean"], "featurizer.scale.mean")),
            scale_std=None if scale is None else tuple(_floats(scale["std"], "featurizer.scale.std")),
            one_hot=tuple(
                OneHot(
                    column=_text(g["column"], f"featurizer.one_hot[{i}].column"),
                    width=_int(g["width"], f"featurizer.one_hot[{i}].width"),
                    categories=tuple(_texts(g["categories"], f"featurizer.one_hot[{i}].categories")),
                    offsets=tuple(_ints(g["offsets"], f"featurizer.one_hot[{i}].offsets")),
                    unseen=_int(g["unseen"], f"featurizer.one_hot[{i}].unseen"),
                )
                for i, g in enumerate(one_hot)
            ),
            target=tuple(
                Target(
                    column=_text(t["column"], f"featurizer.target[{i}].column"),
                    width=_int(t["width"], f"featurizer.target[{i}].width"),
                    categories=tuple(_texts(t["categories"], f"featurizer.target[{i}].categories")),
                    values=tuple(
                        tuple(_floats(v, f"featurizer.target[{i}].values"))
                        for v in _list(t["values"], f"featurizer.target[{i}].values")
                    ),
                    unseen=tuple(_floats(t["unseen"], f"featurizer.target[{i}].unseen")),
                )
                for i, t in enumerate(target)
            ),
            names=tuple(_texts(top["names"], "featurizer.names")),
        )
        plan.check(schema)
        return plan

    def check(self, schema: Schema) -> None:
        """Every length, index and value in range, and the columns the schema's (PlanError if not)."""
        if self.numeric != tuple(schema.numeric):
            raise PlanError(
                f"featurizer.numeric.columns {list(self.numeric)} are not the schema's {list(schema.numeric)}"
            )
        if len(self.fill) != len(self.numeric):
            raise PlanError("featurizer.numeric.fill must have one value per numeric column")
        if any(not 0 <= i < len(self.numeric) for i in self.indicators) or list(self.indicators) != sorted(
            set(self.indicators)
        ):
            raise PlanError("featurizer.numeric.indicators must be increasing positions of numeric columns")
        numeric_width = len(self.numeric) + len(self.indicators)
        if (self.scale_mean is None) != (self.scale_std is None):
            raise PlanError("featurizer.scale needs both mean and std")
        if self.scale_mean is not None and self.scale_std is not None:
            if len(self.scale_mean) != numeric_width or len(self.scale_std) != numeric_width:
                raise PlanError(f"featurizer.scale must have {numeric_width} values (numeric outputs)")
            if any(abs(s) < FLOAT32_TINY for s in self.scale_std):
                raise PlanError("featurizer.scale.std must not be 0 (nor below float32's smallest normal number)")
        categorical = [g.column for g in self.one_hot] + [t.column for t in self.target]
        if sorted(categorical) != sorted(schema.categorical) or len(set(categorical)) != len(categorical):
            raise PlanError(
                f"featurizer categorical columns {categorical} are not the schema's {list(schema.categorical)}"
            )
        for i, g in enumerate(self.one_hot):
            where = f"featurizer.one_hot[{i}] ({g.column})"
            if g.width < 1 or len(g.offsets) != len(g.categories) or len(set(g.categories)) != len(g.categories):
                raise PlanError(f"{where}: needs width ≥ 1 and one offset per distinct category")
            if any(not -1 <= o < g.width for o in (*g.offsets, g.unseen)):
                raise PlanError(f"{where}: offsets must be -1 or below the width {g.width}")
        for i, t in enumerate(self.target):
            where = f"featurizer.target[{i}] ({t.column})"
            if t.width < 1 or len(t.values) != len(t.categories) or len(set(t.categories)) != len(t.categories):
                raise PlanError(f"{where}: needs width ≥ 1 and values per distinct category")
            if any(len(v) != t.width for v in (*t.values, t.unseen)):
                raise PlanError(f"{where}: every category needs {t.width} value(s)")
        width = numeric_width + sum(g.width for g in self.one_hot) + sum(t.width for t in self.target)
        if len(self.names) != width or len(set(self.names)) != width:
            raise PlanError(f"featurizer.names must be {width} distinct names (the output width)")

    # ---- what it knows ---------------------------------------------------------------------------

    @property
    def parts(self) -> tuple[OneHot | Target, ...]:
        """The categorical columns' encodings, in output order."""
        return (*self.one_hot, *self.target)

    @property
    def width(self) -> int:
        return len(self.names)

    @functools.cached_property
    def learned(self) -> Mapping[str, frozenset[str]]:
        """Per categorical column, the categories the encoders learned (as the text they compare)."""
        return MappingProxyType({p.column: frozenset(p.categories) for p in self.parts})

    def groups(self) -> dict[str, list[str]]:
        """Output column names of each categorical input column (one-hot or target-encoded)."""
        groups, start = {}, len(self.numeric) + len(self.indicators)
        for part in self.parts:
            groups[part.column], start = list(self.names[start : start + part.width]), start + part.width
        return groups

    def one_hot_groups(self) -> dict[str, list[str]]:
        one_hot = {g.column for g in self.one_hot}
        return {column: names for column, names in self.groups().items() if column in one_hot}

    # ---- applying it -----------------------------------------------------------------------------

    def frame_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The matrix of raw feature columns in a frame (numbers parsed and text read as training does)."""
        numbers = [_column_to_float(frame[c]) for c in self.numeric]
        levels = {p.column: _column_to_levels(frame[p.column]).to_numpy() for p in self.parts}
        return self.matrix(numbers, levels, len(frame))

    def matrix(self, numbers: Sequence[Any], levels: Mapping[str, Sequence[str]], n: int) -> np.ndarray:
        """`numbers`: one float sequence per numeric column; `levels`: per categorical column, its
        values as the encoders' text. Returns n × width float32, row-major."""
        out = np.zeros((n, self.width), dtype=np.float32)
        k = len(self.numeric)
        if k:
            values = np.empty((n, k), dtype=np.float32)
            for j, column in enumerate(numbers):
                values[:, j] = column
            missing = np.isnan(values)
            if missing.any():
                values[missing] = np.broadcast_to(np.asarray(self.fill, dtype=np.float32), values.shape)[missing]
            out[:, :k] = values
            for position, j in enumerate(self.indicators):
                out[:, k + position] = missing[:, j]
            numeric_width = k + len(self.indicators)
            if self.scale_mean is not None:
                block = out[:, :numeric_width]
                block -= np.asarray(self.scale_mean, dtype=np.float32)  # in float32, as StandardScaler does
                block /= np.asarray(self.scale_std, dtype=np.float32)
            start = numeric_width
        else:
            start = len(self.indicators)
        rows = np.arange(n)
        for g in self.one_hot:
            offsets = _lookup(levels[g.column], g.answers, g.unseen)
            hit = offsets >= 0
            out[rows[hit], start + offsets[hit]] = 1.0
            start += g.width
        for t in self.target:
            index = _lookup(levels[t.column], t.answers, len(t.categories))
            out[:, start : start + t.width] = t.table[index]
            start += t.width
        return out


def _lookup(values: Sequence[str], answers: Mapping[str, int], unseen: int) -> np.ndarray:
    """Per value, the answer of its category (or `unseen`): by dict for a few rows, factorized for many."""
    if len(values) <= 64:
        return np.array([answers.get(v, unseen) for v in values], dtype=np.int64)
    codes, distinct = pd.factorize(np.asarray(values, dtype=object))
    per_distinct = np.array([answers.get(v, unseen) for v in distinct], dtype=np.int64)
    return per_distinct[codes] if len(distinct) else np.full(len(values), unseen, dtype=np.int64)


def _probe(encoder: Any, columns: list[Any]) -> np.ndarray:
    """The fitted encoder's output for each of its categories (row i = category i of every column,
    repeating the first for shorter columns) and, in the last row, for an unseen category."""
    length = max(len(c) for c in encoder.categories_) + 1
    probe = {}
    for k, column in enumerate(columns):
        categories = [str(c) for c in encoder.categories_[k]]
        probe[column] = [*categories, *[categories[0]] * (length - 1 - len(categories)), UNSEEN_PROBE]
    frame = pd.DataFrame(probe, columns=columns, dtype=object)
    frame.columns = list(encoder.feature_names_in_)
    out = encoder.transform(frame)
    return np.asarray(out.to_numpy() if isinstance(out, pd.DataFrame) else out, dtype=np.float64)


def _hot(row: np.ndarray) -> int:
    """The position of the single 1 in a one-hot row, or -1 when all are 0."""
    ones = np.flatnonzero(row)
    if len(ones) > 1 or (len(ones) == 1 and row[ones[0]] != 1):
        raise PlanError("a one-hot encoder gave more than a single 1 for one category")
    return int(ones[0]) if len(ones) else -1


def levels_of(values: Sequence[Any]) -> list[str]:
    """Categorical values (from JSON: text, numbers, booleans, None) as the encoders' text."""
    return [MISSING if v is None else v if isinstance(v, str) else str(v) for v in values]


# ---- strict readers of parsed JSON ---------------------------------------------------------------


def _object(raw: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict) or set(raw) != keys:
        raise PlanError(f"{where} must be an object with exactly the keys {sorted(keys)}")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise PlanError(f"{where} must be a list")
    return raw


def _texts(raw: Any, where: str) -> list[str]:
    return [_text(v, where) for v in _list(raw, where)]


def _text(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise PlanError(f"{where} must hold text")
    return raw


def _ints(raw: Any, where: str) -> list[int]:
    return [_int(v, where) for v in _list(raw, where)]


def _int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or abs(raw) > 2**31:
        raise PlanError(f"{where} must hold integers")
    return raw


def _floats(raw: Any, where: str) -> list[float]:
    values = _list(raw, where)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise PlanError(f"{where} must hold numbers")
    try:
        floats = [float(v) for v in values]
    except OverflowError:
        raise PlanError(f"{where} must hold finite numbers") from None
    if not all(np.isfinite(floats)) or any(abs(v) > FLOAT32_MAX for v in floats):
        raise PlanError(f"{where} must hold finite numbers within float32's range (the features' precision)")
    return floats
