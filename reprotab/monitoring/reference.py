"""The drift reference: what a batch is compared with, summarized once when the model is trained.

The pipeline's reference stage (stages/reference.py, right after train) writes models/reference.json
next to the model, so it is versioned with it and a registered version carries its own: the
monitor reads kilobytes instead of the training rows (a folder of millions of rows, at the
version's commit, through DVC). It holds

- a sketch per feature of the training split, cleaned as every incoming row is
  (reprotab/stats/sketch.py: quantiles, or category counts);
- a sketch of the training target (class counts, or the numbers' quantiles and moments), for
  label drift;
- a sketch of the model's scores on the test split (rows it never trained on, whose scores are
  what unseen rows look like), for prediction drift: the positive-class probability (binary), the
  predicted class (multiclass), the prediction (regression);
- the sha256 of the model file the scores are of, so a reference is never used for another model.

A version registered before references existed has none: the monitor builds the same record from
its training and test splits (`build`), which is what the reference stage does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.incoming import MIN_SHARE, clean_incoming
from reprotab.data.tables import write_json
from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema, encode_target, label_text
from reprotab.model.served import TabularModel
from reprotab.stats import sketch
from reprotab.stats.sketch import CategorySketch, NumericSketch, Sketch

FORMAT = 1
SAMPLE_ROWS = 1_000_000  # rows of a folder split summarized: its quantiles within 0.1%, as the sketch's


@dataclass(frozen=True)
class DriftReference:
    features: dict[str, Sketch]  # every feature of the schema
    target: Sketch | None  # the training target (None when the training rows had none)
    scores: Sketch  # the model's scores on the test split
    rows: int  # training rows summarized
    holdout_rows: int  # test rows scored
    model_sha256: str | None  # the model file the scores are of
    origin: str = ""  # where it was read or built from, for the report (not stored)

    def class_counts(self, schema: Schema) -> np.ndarray:
        """The training target's count of each of the schema's classes."""
        counts = self.target.counts if isinstance(self.target, CategorySketch) else {}
        return np.array([counts.get(label_text(c), 0) for c in schema.classes], dtype=int)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model_sha256": self.model_sha256,
            "rows": self.rows,
            "holdout_rows": self.holdout_rows,
            "target": None if self.target is None else self.target.as_dict(),
            "scores": self.scores.as_dict(),
            "features": {name: entry.as_dict() for name, entry in self.features.items()},
        }


def category_labels(values: pd.Series) -> pd.Series:
    """Categories as text, missing kept missing; whole numbers as '3' whether stored as 3 or 3.0."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        text = pd.Series([f"{v:g}" for v in numbers], index=values.index, dtype=object)
        return text.where(~np.isnan(numbers), None)
    if pd.api.types.is_string_dtype(values):  # already text: as is (converting a million rows costs seconds)
        return values
    return values.astype("string").astype(object).where(values.notna(), None)


def model_scores(model: TabularModel, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """(score for drift, class probabilities or None): see the module docstring for what the score is."""
    if model.kind == "regression":
        return np.asarray(model.predict(rows), dtype=float), None
    proba = model.predict_proba(rows)
    if model.binary:
        return proba[:, model.positive_index()], proba
    return model.classes[model.class_indices(proba)], proba


def column_sketch(values: pd.Series, *, numeric: bool) -> Sketch:
    if numeric:
        return sketch.numeric_sketch(values.to_numpy(dtype=float, na_value=np.nan))
    return sketch.category_sketch(category_labels(values))


def scores_sketch(scores: np.ndarray) -> Sketch:
    if scores.dtype == object or not np.issubdtype(scores.dtype, np.number):
        return sketch.category_sketch(pd.Series(scores).map(str))
    return sketch.numeric_sketch(scores)


def target_sketch(rows: pd.DataFrame, schema: Schema) -> Sketch | None:
    if schema.target not in rows.columns:
        return None
    values = rows[schema.target]
    if schema.task == "regression":
        return sketch.numeric_sketch(pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan))
    codes = encode_target(values.dropna(), schema)
    counts = np.bincount(codes, minlength=len(schema.classes))
    return CategorySketch(
        rows=len(values),
        missing=int(values.isna().sum()),
        counts={label_text(c): int(n) for c, n in zip(schema.classes, counts, strict=True)},
    )


def build(
    model: TabularModel,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    *,
    model_sha256: str | None,
    origin: str,
    min_share: float = MIN_SHARE,
) -> DriftReference:
    """The reference of `model`: its training rows and its scores on `holdout`, summarized."""
    schema = model.schema
    clean = clean_incoming(train, schema, featurizer=None, where="reference", min_share=min_share).frame
    features = {c: column_sketch(clean[c], numeric=c in schema.numeric) for c in schema.features}
    scores, _ = model_scores(model, holdout)
    return DriftReference(
        features=features,
        target=target_sketch(train, schema),
        scores=scores_sketch(scores),
        rows=len(train),
        holdout_rows=len(holdout),
        model_sha256=model_sha256,
        origin=origin,
    )


def write(reference: DriftReference, path: str | Path) -> None:
    write_json(reference.as_dict(), path)


def _kind(entry: Sketch) -> str:
    return "numeric" if isinstance(entry, NumericSketch) else "categorical"


def parse(text: str | bytes, *, schema: Schema, where: str) -> DriftReference:
    """A stored reference, checked against the model's schema; UserError naming `where` when it is
    not one (unreadable, another format, a malformed sketch, features other than the model's)."""

    def refuse(what: str, got: Any = None) -> UserError:
        return UserError(problem(where, what, got, "Run `dvc repro`: its reference stage writes it again"))

    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise refuse(f"is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise refuse(f"is not a drift reference of format {FORMAT}")
    try:
        features = data.get("features")
        if not isinstance(features, dict):
            raise sketch.SketchError("features must be an object of column: sketch")
        parsed = {str(k): sketch.from_dict(v, what=f"feature '{k}'") for k, v in features.items()}
        target = data.get("target")
        reference = DriftReference(
            features=parsed,
            target=None if target is None else sketch.from_dict(target, what="target"),
            scores=sketch.from_dict(data.get("scores"), what="scores"),
            rows=sketch.count(data.get("rows"), "rows"),
            holdout_rows=sketch.count(data.get("holdout_rows"), "holdout_rows"),
            model_sha256=data.get("model_sha256"),
            origin=where,
        )
    except sketch.SketchError as exc:
        raise refuse(f"is malformed: {exc.what}", exc.got) from None
    expected = {c: "numeric" if c in schema.numeric else "categorical" for c in schema.features}
    found = {c: _kind(entry) for c, entry in reference.features.items()}
    if found != expected:
        differ = sorted(c for c in expected.keys() | found.keys() if expected.get(c) != found.get(c))
        raise refuse(f"does not describe this model's features (differs on {', '.join(differ)})")
    scores = "categorical" if schema.task == "classification" and len(schema.classes) > 2 else "numeric"
    if _kind(reference.scores) != scores or (
        reference.target is not None and _kind(reference.target) != _target_kind(schema)
    ):
        raise refuse(f"does not describe a {schema.task} model's scores and target")
    return reference


def _target_kind(schema: Schema) -> str:
    return "numeric" if schema.task == "regression" else "categorical"


def read(path: str | Path, *, schema: Schema) -> DriftReference:
    return parse(Path(path).read_bytes(), schema=schema, where=str(path))
