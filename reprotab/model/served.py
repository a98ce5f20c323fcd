"""The served model: one object, one file format, one loader.

`TabularModel` is what train builds (once, with its threshold and calibrator already chosen)
and what evaluate, the gate, batch scoring, the service and the monitor load, always through
`load()`. It holds the fitted featurizer and estimator in one sklearn Pipeline plus the schema,
so it takes raw feature columns and returns labels in the user's own classes: serving cannot
drift from training because there is no second copy of the preprocessing.

The file is a joblib pickle of the object; `FORMAT_VERSION` is stored inside it and in
`models/model.json`. A file from another format version (or from before versions existed,
when the class lived in `stages.estimators`, or from format 1, when the library's modules were one
flat folder and the class was `reprotab.served.TabularModel`) is refused with a message saying to retrain,
instead of failing somewhere deep in unpickling or, worse, half-working.

The decision threshold has one meaning, here: `threshold` is what train chose (None when
nothing was chosen), `decision_threshold` is what predictions use (binary only; 0.5 when
nothing was chosen; None for multiclass and regression, which take the most probable class).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from reprotab.data.incoming import require_features
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema

FORMAT_VERSION = 2  # 2: the classes moved into sub-packages (reprotab.model.served, ...)
DEFAULT_THRESHOLD = 0.5


class TabularModel:
    """Raw feature columns in, predictions out."""

    def __init__(
        self, *, pipeline: Pipeline, schema: Schema, threshold: float | None = None, calibrator: Any = None
    ) -> None:
        self.pipeline, self.schema, self.threshold, self.calibrator = pipeline, schema, threshold, calibrator
        self.format_version = FORMAT_VERSION

    @property
    def classes(self) -> np.ndarray:
        return np.array(self.schema.classes, dtype=object)

    @property
    def binary(self) -> bool:
        return self.schema.task == "classification" and len(self.schema.classes) == 2

    @property
    def kind(self) -> str:
        """binary, multiclass or regression."""
        if self.schema.task == "regression":
            return "regression"
        return "binary" if self.binary else "multiclass"

    @property
    def decision_threshold(self) -> float | None:
        """The probability of the positive class at or above which a binary model predicts it."""
        if not self.binary:
            return None
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def estimator(self) -> Any:
        return self.pipeline.named_steps["model"]

    @property
    def featurizer(self) -> Any:
        return self.pipeline.named_steps["features"]

    def features_of(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of `rows`, in training order; missing ones are a UserError
        (reprotab/data/incoming.py `require_features`, the check every incoming row goes through)."""
        require_features(list(map(str, rows.columns)), self.schema, where="input rows")
        return rows[list(self.schema.features)]

    def predict_proba(self, rows: pd.DataFrame, *, calibrated: bool = True) -> np.ndarray:
        """Class probabilities, columns in `schema.classes` order; `calibrated=False` gives the
        estimator's own probabilities when a calibrator was fitted (for before/after curves)."""
        if self.schema.task != "classification":
            raise TypeError("predict_proba applies to classification models only")
        return self.predict_featurized(self.featurizer.transform(self.features_of(rows)), calibrated=calibrated)

    def predict_featurized(self, features: pd.DataFrame, *, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (classification; calibrated unless told) or values (regression)
        from rows the featurizer has already transformed."""
        if self.schema.task == "regression":
            return np.asarray(self.estimator.predict(features), dtype=float)
        proba = np.asarray(self.estimator.predict_proba(features), dtype=float)
        if calibrated and self.calibrator is not None:
            proba = self.calibrator.transform(proba)
        return proba

    def positive_index(self) -> int:
        return list(self.schema.classes).index(self.schema.positive_class)

    def class_indices(self, proba: np.ndarray) -> np.ndarray:
        """Class indices from probabilities: the threshold for binary models, else the most probable."""
        if self.binary:
            positive = self.positive_index()
            return np.where(proba[:, positive] >= self.decision_threshold, positive, 1 - positive)
        return proba.argmax(axis=1)

    def predict_index(self, rows: pd.DataFrame) -> np.ndarray:
        return self.class_indices(self.predict_proba(rows))

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Labels in the user's own classes, or numbers for regression."""
        if self.schema.task == "regression":
            return np.asarray(self.pipeline.predict(self.features_of(rows)), dtype=float)
        return self.classes[self.predict_index(rows)]


def save(model: TabularModel, path: str | Path) -> None:
    """Write the model atomically (a killed run never leaves half a model)."""
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)


def load(path: str | Path, *, where: str = "model") -> TabularModel:
    """The model at `path`, or a UserError that says what is wrong with the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise UserError(problem(where, "file not found", str(path), "Run `dvc repro train` (or `dvc pull`) first"))
    with path.open("rb") as handle:
        return loads(handle, where=where, source=str(path))


def loads(data: bytes | BinaryIO, *, where: str = "model", source: str = "model bytes") -> TabularModel:
    """The model in `data` (the file's bytes, or an open binary file), with the same checks as `load`;
    for models read through `dvc.api.open` from another revision or a remote."""
    handle = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        model = joblib.load(handle)
    except ImportError as exc:  # a module it names is gone, or moved and imports what is gone
        raise UserError(
            problem(
                where,
                f"was written by an incompatible version of this project (it needs module '{exc.name}'); "
                f"this version reads model format {FORMAT_VERSION}",
                source,
                "Retrain it with `dvc repro` on this version",
            )
        ) from None
    except Exception as exc:  # a truncated or foreign pickle raises many types
        raise UserError(problem(where, f"cannot be loaded ({type(exc).__name__}: {exc})", source)) from None
    if not isinstance(model, TabularModel):
        raise UserError(problem(where, "is not a model saved by the train stage", type(model).__name__))
    version = getattr(model, "format_version", 0)
    if version != FORMAT_VERSION:
        raise UserError(
            problem(
                where,
                f"has model format {version}; this version of the project reads format {FORMAT_VERSION}",
                source,
                "Retrain it with `dvc repro` on this version",
            )
        )
    return model
