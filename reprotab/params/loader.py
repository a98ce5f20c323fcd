"""The typed params loader: the only code that opens params.yaml.

`Params` is the whole file: the top-level strategy keys (task, model, sampler, tuner, metric) and
one section per stage (reprotab/params/sections.py); the checks that span sections live here.
All problems are reported at once, each as `<dotted.path>: <rule>. Got <value>. Did you mean ...?`.
Stages do not get the whole `Params`: they get a `StageParams` view limited to the top-level keys
they declare in dvc.yaml (their `PARAMS` constant), so a stage cannot silently depend on a key
whose change would not re-run it.

The package is split in two (the sections, and this loader) because the schema alone was a
600-line module of two ideas: what a knob is, and how the file is read and reported. This
half, a little past 300 lines, is the second idea whole: the file, its cross-section rules,
the report of every problem at once, and the stage views.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from reprotab.errors import UserError, did_you_mean, one_of, problem
from reprotab.params.names import DASK_MODELS, SEARCHES_FAMILIES, families
from reprotab.params.sections import (
    AUDIT_ENV,
    SHARED,
    TASK_KEYS,
    TASKS,
    CanaryParams,
    DaskParams,
    DataParams,
    EvaluateParams,
    FeaturizeParams,
    GateParams,
    MonitorParams,
    PrepareParams,
    RetrainParams,
    Rule,
    SamplingParams,
    Scalar,
    Section,
    ServeParams,
    TrainParams,
    TuneParams,
    _registered,
    registry,
)


class Params(Section):
    task: Literal[TASKS] = "classification"  # type: ignore[valid-type]
    model: str = "lightgbm"
    sampler: str = "none"
    tuner: str = "none"
    metric: str = "roc_auc"
    seed: int = Field(42, ge=0)
    engine: Literal["local", "dask"] = "local"  # dask: partitions processed and models trained on a cluster
    dask: DaskParams = DaskParams()
    data: DataParams
    prepare: PrepareParams = PrepareParams()
    featurize: FeaturizeParams = FeaturizeParams()
    sampling: SamplingParams = SamplingParams()
    tune: TuneParams = TuneParams()
    # per model: estimator settings, optionally with a classification/regression block for one task
    # (see hyperparameters_for); tune's trials start from these and train merges tune's best over them
    hyperparameters: dict[str, dict[str, Scalar | dict[str, Scalar]]] = {}  # noqa: RUF012 (pydantic copies it)
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    monitor: MonitorParams = MonitorParams()
    gate: GateParams = GateParams()
    retrain: RetrainParams = RetrainParams()
    serve: ServeParams = ServeParams()
    canary: CanaryParams = CanaryParams()

    @field_validator("model", "sampler", "tuner")
    @classmethod
    def _registered_name(cls, value: str, info: Any) -> str:
        kind = "model choices" if info.field_name == "model" else f"{info.field_name}s"  # model: also auto
        return _registered(info.field_name, value, kind)

    @field_validator("hyperparameters")
    @classmethod
    def _hyperparameters_of_models(cls, value: dict[str, Any]) -> dict[str, Any]:
        for model, settings in value.items():
            _registered("hyperparameters", model, "models")
            for name, setting in settings.items():
                if isinstance(setting, dict) and name not in TASK_KEYS:
                    raise ValueError(
                        problem(
                            f"hyperparameters.{model}.{name}",
                            "takes a single value; only a classification or regression block holds settings",
                            setting,
                        )
                        + did_you_mean(name, TASK_KEYS)
                    )
                if name in TASK_KEYS and not isinstance(setting, dict):
                    raise ValueError(
                        problem(f"hyperparameters.{model}.{name}", "must be a block of settings for that task", setting)
                    )
                both = sorted(set(setting) & set(settings)) if name in TASK_KEYS else []
                if both:  # e.g. `-S hyperparameters.random_forest.max_features=...` under a task block
                    raise ValueError(
                        problem(
                            f"hyperparameters.{model}",
                            f"sets {', '.join(both)} both for every task and in its {name} block",
                            None,
                            f"Set it in one place, e.g. hyperparameters.{model}.{name}.{both[0]}",
                        )
                    )
        return value

    @model_validator(mode="after")
    def _metric_fits_task(self) -> Params:
        metrics = registry("metrics")
        allowed = metrics[self.task]
        if self.metric not in allowed:
            other = next(t for t in TASKS if t != self.task)
            hint = f" ('{self.metric}' is a {other} metric)" if self.metric in metrics[other] else ""
            raise ValueError(one_of(f"metric (task {self.task})", self.metric, allowed) + hint)
        for where, chosen in (("gate.metric", self.gate.metric), ("canary.metric", self.canary.metric)):
            if chosen is not None and chosen not in allowed:
                raise ValueError(one_of(f"{where} (task {self.task})", chosen, allowed))
        every = [name for names in metrics.values() for name in names]  # a guard of the other task is skipped
        for field in ("guards", "reference_guards"):
            for guard in getattr(self.gate, field):
                if guard not in every:
                    raise ValueError(one_of(f"gate.{field}.{guard}", guard, every))
        if self.task == "regression" and self.sampler not in ("none", "auto"):
            raise ValueError(
                problem(
                    "sampler",
                    "balances classes, so it applies to classification only",
                    self.sampler,
                    "Use sampler: none (or auto, which turns balancing off) with task: regression",
                )
            )
        if self.task == "regression" and self.train.calibration != "none":
            raise ValueError(
                problem(
                    "train.calibration",
                    "calibrates class probabilities, so it applies to classification only",
                    self.train.calibration,
                    "Use train.calibration: none with task: regression",
                )
            )
        if self.task == "regression" and self.train.pseudo_labeling.enabled:
            raise ValueError(
                problem(
                    "train.pseudo_labeling.enabled",
                    "adds confidently predicted classes, so it applies to classification only",
                    True,
                    "Set train.pseudo_labeling.enabled: false with task: regression",
                )
            )
        if self.model in SEARCHES_FAMILIES:
            self._search_model_fits()
        if self.tuner != "none":
            kind = "grid" if self.tuner == "grid" else "space"
            for model in families(self.model):
                if not self.tune.search_space(kind=kind, model=model, task=self.task):
                    raise ValueError(
                        problem(
                            f"tune.{kind}.{model}",
                            f"is empty, so tuner {self.tuner} has nothing to search",
                            None,
                            f"Add hyperparameters to tune.{kind}.{model} (see params.yaml), or use tuner: none",
                        )
                    )
        return self

    @model_validator(mode="after")
    def _engine_fits(self) -> Params:
        """What engine dask cannot do yet is refused here, before any stage runs, naming what works."""
        if self.engine != "dask":
            return self
        refusals: list[tuple[str, str, Any, str]] = []
        if self.model not in DASK_MODELS:
            refusals.append(
                ("model", "has no distributed trainer", self.model, "Use model: xgboost (early stopping) or lightgbm")
            )
        if self.sampler != "none":
            fix = "Use sampler: none; train.threshold and train.calibration still handle imbalance"
            refusals.append(("sampler", "resamples the whole table in one process", self.sampler, fix))
        if self.train.pseudo_labeling.enabled:
            fix = "Set train.pseudo_labeling.enabled: false"
            refusals.append(("train.pseudo_labeling.enabled", "scores unlabeled rows in one process", True, fix))
        if self.train.init_model:
            fix = "Set train.init_model: null"
            refusals.append(("train.init_model", "continues a model in one process", self.train.init_model, fix))
        if self.data.batches.combine != "none":
            fix = "Put each batch in the data.path folder as a new partition and set data.batches.combine: none"
            refusals.append(("data.batches.combine", "adds files outside data.path", self.data.batches.combine, fix))
        if refusals:
            raise ValueError(
                "\n  - ".join(problem(f"{where} (engine dask)", rule, got, fix) for where, rule, got, fix in refusals)
            )
        return self

    def _search_model_fits(self) -> None:
        """`model: auto` and `model: ensemble` search over the families: they need a sampled tuner
        and a fresh fit."""
        named = " | ".join(registry("models"))
        what = {"auto": "lets the search choose the family", "ensemble": "blends the search's best trials"}[self.model]
        if self.tuner in ("none", "grid"):
            raise ValueError(
                problem(
                    "model",
                    f"{self.model} {what}, so it needs tuner random or optuna, not {self.tuner}",
                    self.model,
                    f"Set tuner: optuna, or name one model ({named})",
                )
            )
        if self.train.init_model:
            raise ValueError(
                problem(
                    "model",
                    f"{self.model} cannot continue a previous model: train.init_model fixes the family",
                    self.model,
                    f"Set model to the previous model's family ({named}), or train.init_model: null",
                )
            )


def hyperparameters_for(hyperparameters: dict[str, Any], *, model: str, task: str) -> dict[str, Any]:
    """`hyperparameters.<model>` for one task: the shared settings, then the task's own block over
    them (e.g. a regression forest's max_features)."""
    settings = hyperparameters.get(model, {})
    shared = {name: value for name, value in settings.items() if name not in TASK_KEYS}
    return {**shared, **settings.get(task, {})}


def _format_error(error: ErrorDetails, model: type[BaseModel]) -> str:
    """Turn one pydantic error into the project's grammar."""
    loc = [str(part) for part in error["loc"] if part != SHARED]
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
    if kind in ("tuple_type", "list_type"):
        return problem(where, "must be a list of values", error.get("input"))
    if kind == "missing":
        return problem(where, "is required")
    if kind == "value_error":  # our own validators already speak the grammar
        cause = error["ctx"]["error"]
        return problem(where, cause.rule, cause.got) if isinstance(cause, Rule) else str(cause)
    return problem(where, error["msg"][0].lower() + error["msg"][1:], error.get("input"))


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Known keys of the section at `loc`; dict levels (a model name, a hyperparameter) are stepped over."""
    annotation: Any = model
    for part in loc:
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
            if part in fields:
                annotation = fields[part].annotation
            elif SHARED in fields:  # a hyperparameter name inside a model's shared space
                annotation = get_args(fields[SHARED].annotation)[1]
            else:
                return []
        else:
            return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [name for name in annotation.model_fields if name != SHARED]
    return []


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
        self._params, self._stage, self._keys = params, stage, keys

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._keys:
            raise AttributeError(
                f"stage '{self._stage}' reads params key '{name}' that it does not declare; "
                f"add it to PARAMS in stages/{self._stage}.py and to the stage's params in dvc.yaml"
            )
        _READS.setdefault(self._stage, set()).add(name)
        return getattr(self._params, name)


# The keys read per stage name since that stage's last record: bounded by the stages and their
# keys, whatever the number of views opened (a view does not outlive its stage's record).
_READS: dict[str, set[str]] = {}


def record_stage_reads(stage: str, *, succeeded: bool = True) -> None:
    """Record the keys `stage`'s views have read since the last call (appended to the audit file
    when STAGES_PARAMS_AUDIT is set), or with `succeeded=False` forget them.
    `reprotab.runner.stage_main` calls it when the stage starts (forget) and ends, so no stage
    has to remember to."""
    read = _READS.pop(stage, None)
    audit = os.environ.get(AUDIT_ENV)
    if succeeded and read is not None and audit:
        with open(audit, "a") as handle:
            handle.write(json.dumps({"stage": stage, "read": sorted(read)}) + "\n")


def load_stage_params(stage: str, keys: tuple[str, ...], path: str | Path = "params.yaml") -> StageParams:
    return StageParams(load_params(path), stage=stage, keys=keys)
