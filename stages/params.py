"""The typed params loader: the only code that opens params.yaml.

Every section is a pydantic model with `extra="forbid"`; all problems are reported at once,
each as `<dotted.path>: <rule>. Got <value>. Did you mean ...?`. Stages do not get the whole
`Params`: they get a `StageParams` view limited to the top-level keys they declare in
dvc.yaml (their `PARAMS` constant), so a stage cannot silently depend on a key whose change
would not re-run it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.errors import UserError, did_you_mean, one_of, problem

TASKS = ("classification", "regression")
MODELS = ("random_forest", "xgboost", "lightgbm")
SAMPLERS = (
    "none",
    "auto",
    "random_over",
    "smote",
    "adasyn",
    "borderline_smote",
    "random_under",
    "smote_tomek",
    "smote_enn",
)
STRATEGIES = ("auto", "minority", "not minority", "not majority", "all", "majority")
TUNERS = ("none",)
METRICS = {
    "classification": (
        "roc_auc",
        "pr_auc",
        "f1",
        "recall",
        "precision",
        "accuracy",
        "balanced_accuracy",
        "log_loss",
        "brier",
    ),
    "regression": ("rmse", "mae", "r2", "mape"),
}
AUDIT_ENV = "STAGES_PARAMS_AUDIT"  # file to which each stage appends the keys it read
Scalar = bool | int | float | str | None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    path: str = "data/raw/churn.parquet"
    target: str
    id_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    positive_class: Scalar = None


class PrepareParams(Section):
    test_size: float = Field(0.2, gt=0, lt=1)
    validation_size: float = Field(0.2, gt=0, lt=1)
    text_to_number_min_share: float = Field(0.95, gt=0, le=1)

    @model_validator(mode="after")
    def _sizes_leave_training_rows(self) -> PrepareParams:
        if self.test_size + self.validation_size >= 0.9:
            raise ValueError(
                problem(
                    "test_size + validation_size",
                    "must be below 0.9 so training keeps rows",
                    round(self.test_size + self.validation_size, 4),
                )
            )
        return self


class FeaturizeParams(Section):
    numeric_imputer: Literal["median", "mean", "most_frequent"] = "median"
    missing_indicators: bool = True
    scale: bool = False
    rare_category_min_share: float = Field(0.01, ge=0, lt=1)
    max_categories: int = Field(30, ge=2)


class SamplingParams(Section):
    """Settings shared by the samplers (see stages/sampling.py)."""

    # A name understood by imblearn, or for binary targets the minority/majority ratio wanted after resampling.
    sampling_strategy: str | float = "auto"
    k_neighbors: int = Field(5, ge=1)
    auto_min_ratio: float = Field(3.0, ge=1)

    @field_validator("sampling_strategy")
    @classmethod
    def _known_strategy(cls, value: str | float) -> str | float:
        if isinstance(value, str) and value not in STRATEGIES:
            raise ValueError(one_of("sampling.sampling_strategy", value, STRATEGIES) + " Or give a number in (0, 1].")
        if not isinstance(value, str) and not 0 < value <= 1:
            raise ValueError(problem("sampling.sampling_strategy", "must be a number in (0, 1] or a name", value))
        return value


class TuneParams(Section):
    pass


class TrainParams(Section):
    random_forest: dict[str, Scalar] = {}
    xgboost: dict[str, Scalar] = {}
    lightgbm: dict[str, Scalar] = {}


class EvaluateParams(Section):
    pass


class Params(Section):
    task: Literal[TASKS] = "classification"  # type: ignore[valid-type]
    model: Literal[MODELS] = "random_forest"  # type: ignore[valid-type]
    sampler: Literal[SAMPLERS] = "none"  # type: ignore[valid-type]
    tuner: Literal[TUNERS] = "none"  # type: ignore[valid-type]
    metric: str = "roc_auc"
    seed: int = Field(42, ge=0)
    data: DataParams
    prepare: PrepareParams = PrepareParams()
    featurize: FeaturizeParams = FeaturizeParams()
    sampling: SamplingParams = SamplingParams()
    tune: TuneParams = TuneParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Params:
        allowed = METRICS[self.task]
        if self.metric not in allowed:
            other = next(t for t in TASKS if t != self.task)
            hint = f" ('{self.metric}' is a {other} metric)" if self.metric in METRICS[other] else ""
            raise ValueError(one_of(f"metric (task {self.task})", self.metric, allowed) + hint)
        if self.task == "regression" and self.sampler not in ("none", "auto"):
            raise ValueError(
                problem(
                    "sampler",
                    "balances classes, so it applies to classification only",
                    self.sampler,
                    "Use sampler: none (or auto, which turns balancing off) with task: regression",
                )
            )
        return self


def _format_error(error: dict[str, Any], model: type[BaseModel]) -> str:
    """Turn one pydantic error into the project's grammar."""
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc) or "params.yaml"
    kind = error["type"]
    if kind == "literal_error":
        expected = [e.strip().strip("'") for e in error["ctx"]["expected"].replace(" or ", ", ").split(",")]
        return one_of(where, error["input"], expected)
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return problem(where, "is not a known key", None, f"Known keys here: {', '.join(allowed)}") + did_you_mean(
            loc[-1], allowed
        )
    if kind == "missing":
        return problem(where, "is required")
    if kind == "value_error":  # our own validators already speak the grammar
        return str(error["ctx"]["error"])
    return problem(where, error["msg"][0].lower() + error["msg"][1:], error.get("input"))


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def parse_params(raw: Any) -> Params:
    """Validate a params mapping; raise one `UserError` listing every problem."""
    if not isinstance(raw, dict):
        raise UserError(problem("params.yaml", "must be a mapping of keys to values", type(raw).__name__))
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = [_format_error(e, Params) for e in exc.errors()]
        raise UserError("\n".join(["params.yaml has problems:", *(f"  - {line}" for line in lines)])) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise UserError(problem("params.yaml", "file not found", str(path)))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(problem(str(path), f"is not valid YAML ({exc})")) from None
    return parse_params(raw)


class StageParams:
    """Read-only view of `Params` limited to the keys a stage declares in dvc.yaml.

    Reading an undeclared key is a bug in the stage (its dvc.yaml entry would not re-run it
    when that key changes), so it raises at once. Keys read are recorded; with the
    STAGES_PARAMS_AUDIT environment variable set they are appended to that file, which the
    dvc.yaml contract test compares with each stage's declaration.
    """

    def __init__(self, params: Params, *, stage: str, keys: tuple[str, ...]) -> None:
        unknown = set(keys) - set(Params.model_fields)
        if unknown:
            raise KeyError(f"stage '{stage}' declares unknown params keys {sorted(unknown)}")
        self._params, self._stage, self._keys, self._read = params, stage, keys, set()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._keys:
            raise AttributeError(
                f"stage '{self._stage}' reads params key '{name}' that it does not declare; "
                f"add it to PARAMS in stages/{self._stage}.py and to the stage's params in dvc.yaml"
            )
        self._read.add(name)
        return getattr(self._params, name)

    def record_reads(self) -> None:
        audit = os.environ.get(AUDIT_ENV)
        if audit:
            with open(audit, "a") as handle:
                handle.write(json.dumps({"stage": self._stage, "read": sorted(self._read)}) + "\n")


def load_stage_params(stage: str, keys: tuple[str, ...], path: str | Path = "params.yaml") -> StageParams:
    return StageParams(load_params(path), stage=stage, keys=keys)
