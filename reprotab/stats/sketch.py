"""Column summaries that stand in for the rows: what a drift check needs of a reference, in kilobytes.

The monitor compares a batch with the data the model learned. Reading the training rows for every
check costs their size each time (a folder of millions of rows, at a past commit, through DVC), so
the pipeline summarizes each column once (reprotab/monitoring/reference.py) and the checks read these:

- `NumericSketch`: row and missing counts, mean and standard deviation of the present values, and
  their `POINTS` + 1 quantiles at 0, 1/POINTS, ..., 1 by the inverted CDF (each one a value of the
  column, so a column of few distinct values keeps them exactly). The share of values at or below
  x, `cdf(x)`, is read from it within 1/POINTS: the bins of PSI and the KS statistic come from it
  (reprotab/stats/drift.py).
- `CategorySketch`: counts of the `MAX_CATEGORIES` most frequent categories (as text), the rest
  pooled in `other`, and the missing count.

Both are JSON-ready (`as_dict`, `from_dict`); `from_dict` refuses a malformed entry with `SketchError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

POINTS = 1000  # quantiles per numeric column: cdf within 0.001
MAX_CATEGORIES = 1000  # categories counted one by one; the rarer ones are pooled as `other`


@dataclass(frozen=True)
class NumericSketch:
    rows: int
    missing: int
    mean: float
    std: float
    quantiles: np.ndarray  # POINTS + 1 values (empty when no value is present)

    @property
    def present(self) -> int:
        return self.rows - self.missing

    def cdf(self, x: np.ndarray, *, strict: bool = False) -> np.ndarray:
        """Share of present values at or below x (below x with `strict`), within 1/POINTS."""
        steps = len(self.quantiles) - 1
        if steps < 1:
            return np.zeros(len(np.atleast_1d(x)))
        return np.searchsorted(self.quantiles[1:], x, side="left" if strict else "right") / steps

    def edges(self, bins: int) -> np.ndarray:
        """Inner bin edges for `bins` bins of equal shares, repeated edges merged: the i-th is the
        smallest value with a share i/bins at or below it (the inverted CDF; a value equal to an
        edge goes in the bin above it, so a value holding much of the column gets a bin of its own)."""
        steps = len(self.quantiles) - 1
        if steps < 1:
            return np.array([])
        picks = -(-np.arange(1, bins) * steps // bins)  # ceil: the first point at or above the share
        return np.unique(self.quantiles[picks])

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "rows": self.rows,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "quantiles": self.quantiles.tolist(),
        }


@dataclass(frozen=True)
class CategorySketch:
    rows: int
    missing: int
    counts: dict[str, int]  # most frequent first
    other: int = 0  # rows of the categories beyond MAX_CATEGORIES

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "rows": self.rows,
            "missing": self.missing,
            "counts": self.counts,
            "other": self.other,
        }


Sketch = NumericSketch | CategorySketch


def numeric_sketch(values: np.ndarray) -> NumericSketch:
    """The sketch of a float array (NaN is missing)."""
    values = np.asarray(values, dtype=float)
    present = values[~np.isnan(values)]
    if not len(present):
        return NumericSketch(rows=len(values), missing=len(values), mean=0.0, std=0.0, quantiles=np.array([]))
    steps = np.arange(POINTS + 1)  # the inverted CDF at j/POINTS in whole numbers: no rounding at a tie
    quantiles = np.sort(present)[np.maximum((steps * len(present) + POINTS - 1) // POINTS - 1, 0)]
    return NumericSketch(
        rows=len(values),
        missing=len(values) - len(present),
        mean=float(present.mean()),
        std=float(present.std()),
        quantiles=quantiles,
    )


def category_sketch(values: pd.Series) -> CategorySketch:
    """The sketch of text categories (None/NaN is missing)."""
    counted = values.dropna().value_counts(sort=False)
    ranked = sorted(((str(k), int(v)) for k, v in counted.items()), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ranked[:MAX_CATEGORIES])
    return CategorySketch(
        rows=len(values),
        missing=int(values.isna().sum()),
        counts=kept,
        other=sum(count for _, count in ranked[MAX_CATEGORIES:]),
    )


class SketchError(ValueError):
    """A malformed stored sketch: what is wrong (`what`) and the value found (`got`, when one is)."""

    def __init__(self, what: str, got: Any = None) -> None:
        super().__init__(what if got is None else f"{what}, got {got!r}")
        self.what, self.got = what, got


def count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SketchError(f"{what} must be a count (a whole number >= 0)", value)
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise SketchError(f"{what} must be a finite number", value)
    return float(value)


def from_dict(entry: Any, *, what: str) -> Sketch:
    """A sketch from its `as_dict` form; `SketchError` naming `what` when the entry is malformed."""
    if not isinstance(entry, dict) or entry.get("kind") not in ("numeric", "categorical"):
        raise SketchError(f"{what} must be an object with kind 'numeric' or 'categorical'")
    rows, missing = count(entry.get("rows"), f"{what} rows"), count(entry.get("missing"), f"{what} missing")
    if missing > rows:
        raise SketchError(f"{what} has more missing values than rows ({rows})", missing)
    if entry["kind"] == "categorical":
        counts = entry.get("counts")
        if not isinstance(counts, dict):
            raise SketchError(f"{what} counts must be an object of category: count")
        counts = {str(k): count(v, f"{what} count of '{k}'") for k, v in counts.items()}
        other = count(entry.get("other", 0), f"{what} other")
        if sum(counts.values()) + other + missing != rows:
            raise SketchError(f"{what} counts, other and missing do not add up to its {rows} rows")
        return CategorySketch(rows=rows, missing=missing, counts=counts, other=other)
    quantiles = entry.get("quantiles")
    if not isinstance(quantiles, list) or len(quantiles) not in (0, POINTS + 1):
        raise SketchError(f"{what} quantiles must be a list of {POINTS + 1} numbers (none when nothing is present)")
    points = np.array([_number(q, f"{what} quantile") for q in quantiles], dtype=float)
    if np.any(np.diff(points) < 0):
        raise SketchError(f"{what} quantiles must not decrease")
    if (len(points) == 0) != (rows == missing):
        raise SketchError(f"{what} quantiles must be present exactly when some value is ({rows - missing} present)")
    mean, std = _number(entry.get("mean"), f"{what} mean"), _number(entry.get("std"), f"{what} std")
    return NumericSketch(rows=rows, missing=missing, mean=mean, std=std, quantiles=points)
