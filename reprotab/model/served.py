"""The served model: one object, one file format, one loader, one scoring path.

`TabularModel` is what train builds (once, with its threshold and calibrator already chosen)
and what evaluate, the gate, batch scoring, the service and the monitor load, always through
`load()`. It holds the schema, the featurizer as a plan (reprotab/model/plan.py), the estimator
in its library's own format (reprotab/model/boosters.py) and the calibrator as numbers, so it
takes raw feature columns and returns labels in the user's own classes with NumPy and the
booster only: no pandas transformer and no scikit-learn pipeline per request, and serving cannot
drift from training because train converts its fitted pipeline into this object (checking the
plan against the pipeline on the validation rows) before anything scores with it.

The file is a model bundle (reprotab/model/bundle.py): a zip of checked members, never a pickle.
A pickle from an older version is refused with a message naming `reprotab model convert`
(reprotab/model/convert.py), the one place that unpickles, explicitly.

The decision threshold has one meaning, here: `threshold` is what train chose (None when
nothing was chosen), `decision_threshold` is what predictions use (binary only; 0.5 when
nothing was chosen; None for multiclass and regression, which take the most probable class).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from reprotab.data.incoming import require_features
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem
from reprotab.model.boosters import BOOSTERS, Booster, BoosterError
from reprotab.model.bundle import (
    CONVERT,
    FORMAT,
    FORMAT_VERSION,
    BundleError,
    json_bytes,
    member_json,
    read_members,
    write_members,
)
from reprotab.model.calibration import DEFAULT_THRESHOLD, Calibrator
from reprotab.model.plan import FeaturePlan, PlanError
from reprotab.model.schema import Schema

LIBRARIES = ("numpy", "scikit-learn", "lightgbm", "xgboost-cpu")  # every bundle; a family may add its own


def members() -> dict[str, set[str]]:
    """Each family's members (read when loading, so a family registered later is known)."""
    return {family: {"schema.json", "featurizer.json", "decision.json", b.member} for family, b in BOOSTERS.items()}


INVALID_FIX = "Re-run `dvc repro train` (or `dvc pull`) to get a valid model file"


class TabularModel:
    """Raw feature columns in, predictions out."""

    def __init__(
        self,
        *,
        schema: Schema,
        plan: FeaturePlan,
        booster: Booster,
        threshold: float | None = None,
        calibrator: Calibrator | None = None,
        estimator_name: str = "",
    ) -> None:
        self.schema, self.plan, self.booster = schema, plan, booster
        self.threshold, self.calibrator = threshold, calibrator
        self.estimator_name = estimator_name or type(booster.native).__name__
        self.format_version = FORMAT_VERSION
        self._classes = np.array(schema.classes, dtype=object)

    @classmethod
    def from_fitted(
        cls,
        *,
        featurizer: Any,
        estimator: Any,
        family: str,
        schema: Schema,
        threshold: float | None = None,
        calibrator: Calibrator | None = None,
    ) -> TabularModel:
        """The served form of a fitted featurizer and estimator; the plan is checked against the
        featurizer, bit for bit, as it is made (reprotab/model/plan.py `check_against`)."""
        plan = FeaturePlan.from_featurizer(featurizer, schema)
        kind = kind_of(schema)
        booster = BOOSTERS[family].from_estimator(
            estimator, kind=kind, n_classes=len(schema.classes), n_features=plan.width
        )
        name = type(estimator).__name__
        return cls(
            schema=schema, plan=plan, booster=booster, threshold=threshold, calibrator=calibrator, estimator_name=name
        )

    @property
    def family(self) -> str:
        return self.booster.family

    @property
    def estimator(self) -> Any:
        """The library's own estimator object (lightgbm.Booster, xgboost.Booster, a scikit-learn forest)."""
        return self.booster.native

    @property
    def classes(self) -> np.ndarray:
        return self._classes

    @property
    def binary(self) -> bool:
        return self.schema.task == "classification" and len(self.schema.classes) == 2

    @property
    def kind(self) -> str:
        """binary, multiclass or regression."""
        return kind_of(self.schema)

    @property
    def decision_threshold(self) -> float | None:
        """The probability of the positive class at or above which a binary model predicts it."""
        if not self.binary:
            return None
        return DEFAULT_THRESHOLD if self.threshold is None else float(self.threshold)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns after featurizing, in order."""
        return list(self.plan.names)

    def features_of(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of `rows`, in training order; missing ones are a UserError
        (reprotab/data/incoming.py `require_features`, the check every incoming row goes through)."""
        require_features(list(map(str, rows.columns)), self.schema, where="input rows")
        return rows[list(self.schema.features)]

    def featurize(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The featurized rows as a float32 frame with the model's feature names."""
        matrix = self.plan.frame_matrix(self.features_of(rows))
        return pd.DataFrame(matrix, columns=self.feature_names, index=rows.index, copy=False)

    def predict_proba(self, rows: pd.DataFrame, *, calibrated: bool = True) -> np.ndarray:
        """Class probabilities, columns in `schema.classes` order; `calibrated=False` gives the
        estimator's own probabilities when a calibrator was fitted (for before/after curves)."""
        if self.schema.task != "classification":
            raise TypeError("predict_proba applies to classification models only")
        return self.predict_featurized(self.plan.frame_matrix(self.features_of(rows)), calibrated=calibrated)

    def predict_featurized(self, features: Any, *, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (classification; calibrated unless told) or values (regression)
        from rows already featurized (a matrix or frame of the model's feature columns)."""
        matrix = np.ascontiguousarray(features, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.plan.width:
            raise ValueError(f"featurized rows must have {self.plan.width} columns, got shape {matrix.shape}")
        if not np.isfinite(matrix).all():  # a number beyond float32 (the features' precision) became ±inf
            raise ValueError("a value is too large for the model's float32 features (or not finite)")
        out = self.booster.predict(matrix)
        if not np.isfinite(out).all():  # leaves summing past float64 in a damaged or crafted booster
            raise ValueError("the model gave a value that is not finite")
        if self.schema.task == "regression":
            return np.asarray(out, dtype=float)
        if calibrated and self.calibrator is not None:
            out = self.calibrator.transform(out)
        return out

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
            return self.predict_featurized(self.plan.frame_matrix(self.features_of(rows)))
        return self.classes[self.predict_index(rows)]

    def to_bytes(self) -> bytes:
        """The model bundle's bytes (reprotab/model/bundle.py)."""
        decision = {
            "threshold": None if self.threshold is None else float(self.threshold),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
        }
        members = {
            "schema.json": json_bytes(self.schema.to_dict()),
            "featurizer.json": json_bytes(self.plan.to_dict()),
            "decision.json": json_bytes(decision),
            self.booster.member: self.booster.to_bytes(),
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "kind": self.kind,
            "estimator": self.estimator_name,
            "libraries": library_versions((*LIBRARIES, *self.booster.libraries())),
        }
        return write_members(members, manifest)


def kind_of(schema: Schema) -> str:
    if schema.task == "regression":
        return "regression"
    return "binary" if len(schema.classes) == 2 else "multiclass"


def save(model: TabularModel, path: str | Path) -> None:
    """Write the model bundle atomically (a killed run never leaves half a model)."""
    data = model.to_bytes()
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def load(path: str | Path, *, where: str = "model") -> TabularModel:
    """The model at `path`, or a UserError that says what is wrong with the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise UserError(problem(where, "file not found", str(path), "Run `dvc repro train` (or `dvc pull`) first"))
    return loads(path.read_bytes(), where=where, source=str(path))


def loads(data: bytes | BinaryIO, *, where: str = "model", source: str = "model bytes") -> TabularModel:
    """The model in `data` (the file's bytes, or an open binary file), with the same checks as `load`;
    for models read through `dvc.api.open` from another revision or a remote."""
    content = bytes(data) if isinstance(data, bytes | bytearray) else data.read()
    try:
        return _from_bytes(content)
    except BundleError as exc:
        pickled = exc.fix == CONVERT
        rule = f"{exc}" if pickled else f"is not a valid model bundle: {exc}"
        raise UserError(problem(where, rule, source, exc.fix or INVALID_FIX)) from None
    except (PlanError, BoosterError, ValueError, TypeError, LookupError, ArithmeticError) as exc:
        raise UserError(problem(where, f"is not a valid model bundle: {exc}", source, INVALID_FIX)) from None


def _from_bytes(content: bytes) -> TabularModel:
    manifest, found = read_members(content, members())
    schema = schema_from(member_json(found, "schema.json"))
    kind = kind_of(schema)
    if manifest.get("kind") != kind:
        raise BundleError(f"manifest.json: kind {manifest.get('kind')!r} is not the schema's {kind!r}")
    estimator_name = manifest.get("estimator")
    if not isinstance(estimator_name, str):
        raise BundleError("manifest.json: estimator must be text")
    plan = FeaturePlan.from_dict(member_json(found, "featurizer.json"), schema)
    decision = member_json(found, "decision.json")
    if not isinstance(decision, dict) or set(decision) != {"threshold", "calibrator"}:
        raise BundleError("decision.json: must be an object with threshold and calibrator")
    threshold = decision["threshold"]
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1
    ):
        raise BundleError("decision.json: threshold must be null or a number in [0, 1]")
    if threshold is not None and kind != "binary":
        raise BundleError("decision.json: a threshold applies to binary models only")
    calibrator = None
    if decision["calibrator"] is not None:
        if kind == "regression":
            raise BundleError("decision.json: a calibrator applies to classifiers only")
        calibrator = Calibrator.from_dict(decision["calibrator"], n_classes=len(schema.classes))
    family = manifest["family"]
    booster_class = BOOSTERS[family]
    booster = booster_class.from_bytes(
        found[booster_class.member], kind=kind, n_classes=len(schema.classes), n_features=plan.width
    )
    return TabularModel(
        schema=schema,
        plan=plan,
        booster=booster,
        threshold=threshold,
        calibrator=calibrator,
        estimator_name=estimator_name,
    )


def schema_from(raw: Any) -> Schema:
    """The schema in parsed JSON, every field's type checked (BundleError if not)."""
    fields = {"task", "target", "numeric", "categorical", "id_column", "classes", "positive_class", "ignored"}
    if not isinstance(raw, dict) or set(raw) != fields:
        raise BundleError(f"schema.json: must be an object with exactly {sorted(fields)}")
    texts = lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)  # noqa: E731
    scalar = lambda v: v is None or type(v) in (str, int, float, bool)  # noqa: E731
    if (
        raw["task"] not in ("classification", "regression")
        or not isinstance(raw["target"], str)
        or not all(texts(raw[k]) for k in ("numeric", "categorical", "ignored"))
        or not (raw["id_column"] is None or isinstance(raw["id_column"], str))
        or not isinstance(raw["classes"], list)
        or not all(scalar(c) and c is not None for c in raw["classes"])
        or not scalar(raw["positive_class"])
    ):
        raise BundleError("schema.json: a field has the wrong type")
    features = [*raw["numeric"], *raw["categorical"]]
    if not features or len(set(features)) != len(features) or raw["target"] in features:
        raise BundleError("schema.json: features must be distinct, at least one, and not the target")
    classes = raw["classes"]
    if raw["task"] == "classification":
        if len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
            raise BundleError("schema.json: a classifier needs at least 2 distinct classes")
        if (len(classes) == 2) != (raw["positive_class"] is not None) or (
            raw["positive_class"] is not None and raw["positive_class"] not in classes
        ):
            raise BundleError("schema.json: positive_class must be one of 2 classes (binary only)")
    elif classes or raw["positive_class"] is not None:
        raise BundleError("schema.json: a regression model has no classes")
    return Schema.from_dict(raw)


def library_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Each installed package's version (None when absent): for the manifest and the model card."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found
