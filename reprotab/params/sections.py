"""The params schema: one typed, frozen section per stage or concern of params.yaml.

Mostly declarations, so a reader sees every knob's type, default and rule together. Each
section is a pydantic model with `extra="forbid"`; validators raise `Rule` (a complaint without
its location) or a message in the project's grammar, and reprotab/params/loader.py adds the
dotted path. Nothing here opens a file. It stays one module past 300 lines on purpose: it is
the one place params.yaml's shape is declared, and docs/params.md is generated from it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from reprotab.errors import one_of, problem
from reprotab.params import names
from reprotab.params.names import AUTO, ENSEMBLE

TASKS = ("classification", "regression")
AUTO_REPEAT_ROWS = 10_000  # tune.cv_repeats auto: repeat the CV until about this many rows were held out
STRATEGIES = ("auto", "minority", "not minority", "not majority", "all", "majority")
AUDIT_ENV = "STAGES_PARAMS_AUDIT"  # file to which each stage appends the keys it read
Scalar = bool | int | float | str | None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchesParams(Section):
    """Labeled batches that arrive after the reference table (prepare adds them before splitting)."""

    dir: str = "data/batches"  # one CSV/Parquet file per batch; file name order is arrival order
    combine: Literal["none", "all", "window"] = "none"  # none = the reference table only
    window: int = Field(3, ge=1)  # combine: window keeps the last this many batches


class DataParams(Section):
    path: str = "data/raw/churn.parquet"
    # rows without the target for train.pseudo_labeling: a CSV/Parquet file or a folder of them; a DVC dep of
    # train, so it must exist: the shipped folder data/unlabeled holds no table (no rows) until one is put there
    unlabeled_path: str = "data/unlabeled"
    target: str
    id_column: str | None = None
    drop_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    positive_class: Scalar = None
    batches: BatchesParams = BatchesParams()


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


class DaskParams(Section):
    """engine: dask — the cluster the partitioned stages run on (reprotab/engine/)."""

    address: str | None = None  # a running scheduler (tcp://host:8786); null = a local cluster inside the stage
    n_workers: int = Field(2, ge=1)  # local cluster only; training is reproducible for one worker count
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "2GiB"  # per worker, local cluster only (Dask's notation: 4GiB, 512MiB, auto)
    partition_rows: int = Field(250_000, ge=100)  # rows per prepared part file: the unit a worker holds
    sample_rows: int = Field(200_000, ge=100)  # training rows the featurizer is fitted on (a hashed sample)

    @field_validator("memory_limit")
    @classmethod
    def _memory_notation(cls, value: str) -> str:
        from dask.utils import parse_bytes

        if value == "auto":
            return value
        try:
            parse_bytes(value)
        except (ValueError, TypeError):
            raise Rule("must be a size such as 2GiB or 512MiB, or auto", value) from None
        return value


class FeaturizeParams(Section):
    """How rows become model columns (reprotab/model/featurizer.py): train fits the featurizer on its
    training split (reprotab/train/run.py), tune fits one in every fold."""

    numeric_imputer: Literal["median", "mean", "most_frequent"] = "median"
    missing_indicators: bool = True
    scale: bool = False
    rare_category_min_share: float = Field(0.01, ge=0, lt=1)
    max_categories: int = Field(30, ge=2)
    # a categorical column with more distinct training values than max_categories: one_hot (levels beyond
    # max_categories grouped as infrequent) or target (one column of the category's mean target, cross-fitted)
    high_cardinality: Literal["one_hot", "target"] = "target"


class SamplingParams(Section):
    """Settings shared by the samplers (reprotab/train/sampling.py)."""

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


class Rule(ValueError):
    """A validator's complaint without its location; the formatter adds the dotted path."""

    def __init__(self, rule: str, got: object = None) -> None:
        super().__init__(rule)
        self.rule, self.got = rule, got


class Distribution(Section):
    """One searched hyperparameter for random and optuna: a range (`low`, `high`, optional `log`
    or `step`; integers when both ends are integers) or a list of `choices`."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: tuple[Scalar, ...] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> Distribution:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise Rule("takes either choices or low/high, not both")
            if not self.choices:
                raise Rule("has empty choices")
            return self
        if self.low is None or self.high is None:
            raise Rule("needs low and high (a range) or choices (a list)")
        if self.low >= self.high:
            raise Rule(f"needs low below high (low {self.low}, high {self.high})")
        if self.log and self.low <= 0:
            raise Rule(f"needs low above 0 for a log range (low {self.low})")
        if self.log and self.step is not None:
            raise Rule("cannot combine log and step")
        return self

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float)

    def bounds(self) -> tuple[int | float, int | float]:
        """(low, high) of a range; the validator gives every distribution without choices both ends."""
        assert self.low is not None and self.high is not None, "a distribution without choices has low and high"
        return self.low, self.high


GridValues = tuple[Scalar, ...]
TASK_KEYS = ("classification", "regression")
SHARED = "shared"  # internal key for the entries of a model's space that apply to every task


class GridSpace(Section):
    shared: dict[str, GridValues] = {}
    classification: dict[str, GridValues] = {}
    regression: dict[str, GridValues] = {}


class DistributionSpace(Section):
    shared: dict[str, Distribution] = {}
    classification: dict[str, Distribution] = {}
    regression: dict[str, Distribution] = {}


def _nest_shared(value: Any) -> Any:
    """`{max_depth: ..., classification: {...}}` → `{shared: {max_depth: ...}, classification: {...}}`."""
    if not isinstance(value, dict):
        return value
    return {SHARED: {k: v for k, v in value.items() if k not in TASK_KEYS}} | {
        k: v for k, v in value.items() if k in TASK_KEYS
    }


class TuneParams(Section):
    """How tune searches (stages/tune.py, reprotab/tune/)."""

    cv_folds: int = Field(3, ge=0)  # 0 = hold-out: fit on train, score on the validation split
    cv_repeats: int | str = "auto"  # CV repeated with new shuffles; auto: more on small tables
    n_trials: int = Field(20, ge=1)  # random and optuna; grid tries its whole grid
    patience: int | None = Field(30, ge=1)  # stop after this many trials without a gain beyond the CV noise
    confirm: bool = True  # the search's choice must beat the shipped configuration on the validation split
    timeout_minutes: float | None = Field(30, gt=0)
    n_jobs: int = Field(1, ge=1)
    early_stopping_rounds: int | None = Field(30, ge=1)
    pruning: bool = True
    storage: str | None = None
    grid: dict[str, GridSpace] = {}
    space: dict[str, DistributionSpace] = {}

    @field_validator("cv_folds")
    @classmethod
    def _not_one_fold(cls, value: int) -> int:
        if value == 1:
            raise ValueError(problem("tune.cv_folds", "must be 0 (hold-out) or at least 2", value))
        return value

    @field_validator("cv_repeats", mode="before")
    @classmethod
    def _repeats(cls, value: Any) -> Any:
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(problem("tune.cv_repeats", "must be auto or an integer of at least 1", value))
        return value

    def repeats(self, rows: int) -> int:
        """How many times the CV runs: `cv_repeats`, or with auto enough that a trial is scored on
        about 10,000 held-out rows, 1 to 5 times (a gain on a small table is otherwise mostly fold noise)."""
        if self.cv_repeats != "auto":
            return int(self.cv_repeats)
        return 1 if self.cv_folds == 0 else max(1, min(5, math.ceil(AUTO_REPEAT_ROWS / max(rows, 1))))

    @field_validator("grid", "space", mode="before")
    @classmethod
    def _known_models(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for model in value:
            _registered(f"tune.{info.field_name}", model, "models")
        return {model: _nest_shared(space) for model, space in value.items()}

    def search_space(self, *, kind: str, model: str, task: str) -> dict[str, Any]:
        """The `grid` or `space` of one model for one task: shared entries plus the task's block."""
        space = getattr(self, kind).get(model)
        return {} if space is None else {**space.shared, **getattr(space, task)}


class PseudoLabelingParams(Section):
    """Self-training in train (reprotab/train/pseudo_labeling.py): confident predictions on data.unlabeled_path
    join the training rows with a lower weight, for a few rounds. Names follow sklearn's
    SelfTrainingClassifier where they mean the same (max_iter)."""

    enabled: bool = False
    target_precision: float = Field(0.95, gt=0, le=1)  # per-class thresholds reach this precision on validation
    max_share: float = Field(0.5, gt=0, lt=1)  # pseudo-labeled rows ≤ this share of all training rows
    weight: float = Field(0.5, gt=0, le=1)  # sample weight of a pseudo-labeled row (real rows weigh 1)
    max_iter: int = Field(3, ge=1)  # rounds at most; stops early when a round adds no rows
    min_support: int = Field(20, ge=1)  # validation rows at or above a threshold needed to trust its precision


THRESHOLD_METRICS = ("f1", "precision", "recall", "accuracy", "balanced_accuracy")


class TrainParams(Section):
    """How train fits (stages/train.py, reprotab/train/) and turns probabilities into decisions
    (reprotab/model/decision.py)."""

    early_stopping_rounds: int | None = Field(30, ge=1)  # boosters stop on the validation split
    init_model: str | None = None  # a previous model.zip to continue training from
    threshold: Literal["auto"] | float | None = "auto"  # binary only; None = 0.5
    threshold_metric: Literal[THRESHOLD_METRICS] = "f1"  # type: ignore[valid-type]
    min_recall: float | None = Field(None, gt=0, le=1)
    min_precision: float | None = Field(None, gt=0, le=1)
    calibration: Literal["none", "sigmoid", "isotonic"] = "none"
    # after deciding on validation, refit featurizer + estimator on train + validation (true), and with
    # all then once more on every labelled row, test included, for the shipped model (see refit_skipped)
    refit: bool | Literal["all"] = True
    pseudo_labeling: PseudoLabelingParams = PseudoLabelingParams()

    @field_validator("refit", mode="before")
    @classmethod
    def _refit_choice(cls, value: Any) -> Any:
        if not isinstance(value, bool) and value != "all":
            raise ValueError(one_of("train.refit", value, ["true", "false", "all"]))
        return value

    @field_validator("threshold", mode="before")
    @classmethod
    def _threshold_in_unit_interval(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and not 0 <= value <= 1:
            raise ValueError(problem("train.threshold", "must be auto, null or a number in [0, 1]", value))
        if isinstance(value, str) and value != "auto":
            raise ValueError(one_of("train.threshold", value, ["auto", "null", "a number in [0, 1]"]))
        return value

    @property
    def refit_skipped(self) -> str | None:
        """Why train.refit does not apply, if it does not: continued training adds to a previous
        model, and pseudo-labeling's rounds decide on the validation rows a refit would train on."""
        if not self.refit:
            return None
        if self.init_model:
            return "train.init_model continues a previous model"
        if self.pseudo_labeling.enabled:
            return "train.pseudo_labeling decides on validation rows"
        return None

    @model_validator(mode="after")
    def _one_floor(self) -> TrainParams:
        if self.min_recall is not None and self.min_precision is not None:
            raise ValueError(problem("train.min_recall / train.min_precision", "set at most one of the two"))
        if self.pseudo_labeling.enabled and self.init_model:
            raise ValueError(
                problem(
                    "train.pseudo_labeling.enabled",
                    "cannot be combined with train.init_model (continued training takes no sample weights)",
                    True,
                    "Set train.init_model: null, or train.pseudo_labeling.enabled: false",
                )
            )
        return self


class EvaluateParams(Section):
    """How evaluate measures permutation importance (reprotab/evaluate/importance.py)."""

    permutation_repeats: int = Field(5, ge=1)  # shuffles per raw column
    permutation_rows: int = Field(2000, ge=10)  # validation rows used, at most (a seeded sample)


class LabelDriftParams(Section):
    """When a labeled batch's target no longer looks like the training target (a blocker, not a retrain reason)."""

    max_share_change: float = Field(0.4, gt=0, le=1)  # classification: largest move of a class's share (absolute)
    min_rows: int = Field(50, ge=1)  # a class absent from a batch of at least this many labeled rows drifted
    min_reference_share: float = Field(0.01, ge=0, lt=1)  # ... when it holds at least this share of the reference
    max_mean_shift: float = Field(1.0, gt=0)  # regression: largest mean shift, in reference standard deviations


class MonitorParams(Section):
    """Drift thresholds of `reprotab monitor` (reprotab/monitoring/verdict.py); not a pipeline stage."""

    psi_moderate: float = Field(0.1, gt=0)  # a column can drift from this PSI up (with a significant test)
    psi_strong: float = Field(0.25, gt=0)  # strong drift; of an important feature, it asks for retraining
    alpha: float = Field(0.05, gt=0, lt=1)  # test level, Bonferroni-divided by the number of features
    max_drifted_share: float = Field(0.3, gt=0, le=1)  # retrain when more than this share of features drifts
    important_features: int = Field(5, ge=0)  # top-k features by importance whose strong drift asks for retraining
    performance_tolerance: float = Field(0.02, ge=0)  # allowed worsening of the headline metric (unless in tolerances)
    # further metrics judged on a labeled batch: metric -> allowed worsening (direction-aware); another task's skipped
    tolerances: dict[str, float] = {"log_loss": 0.1, "brier": 0.05}
    labels: LabelDriftParams = LabelDriftParams()
    bootstrap: int = Field(500, ge=0)  # resamples for the 95% interval of the batch metric (0 = none)
    bins: int = Field(10, ge=2)  # quantile bins of numeric features for PSI
    sample_rows: int = Field(50_000, ge=1000)  # batch rows scored by the model and used by KS, at most (seeded)

    @field_validator("tolerances")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        every = [name for names in registry("metrics").values() for name in names]
        for name, worst in value.items():
            if name not in every:
                raise ValueError(one_of(f"monitor.tolerances.{name}", name, every))
            if worst < 0:
                raise ValueError(problem(f"monitor.tolerances.{name}", "must be 0 or more (allowed worsening)", worst))
        return value

    def tolerance(self, metric: str) -> float:
        """The allowed worsening of `metric` when it is the headline one."""
        return self.tolerances.get(metric, self.performance_tolerance)

    @model_validator(mode="after")
    def _bands_in_order(self) -> MonitorParams:
        if self.psi_strong < self.psi_moderate:
            raise ValueError(
                problem(
                    "monitor.psi_strong",
                    f"must be at least monitor.psi_moderate ({self.psi_moderate})",
                    self.psi_strong,
                )
            )
        return self


class BootstrapParams(Section):
    """The gate's paired bootstrap over test rows (reprotab/stats/resample.py)."""

    samples: int = Field(1000, ge=0)  # 0 = no bootstrap rule
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int | None = Field(None, ge=0)  # None = the top-level seed


class GateParams(Section):
    """When the challenger replaces the champion (reprotab/registry/gate.py)."""

    metric: str | None = None  # None = the top-level metric
    min_improvement: float = Field(0.0, ge=0)  # absolute, in the metric's units, direction-aware
    min_relative_improvement: float = Field(0.0, ge=0)  # share of the champion's value
    guards: dict[str, float] = {}  # metric -> largest worsening allowed (absolute)
    # metric -> largest worsening allowed on the frozen reference set (models/champion.json's reference)
    reference_guards: dict[str, float] = {}
    bootstrap: BootstrapParams = BootstrapParams()

    @field_validator("guards", "reference_guards")
    @classmethod
    def _non_negative(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for name, worst in value.items():
            if worst < 0:
                where = f"gate.{info.field_name}.{name}"
                raise ValueError(problem(where, "must be 0 or more (largest worsening allowed)", worst))
        return value


class RetrainParams(Section):
    """`reprotab retrain` (reprotab/retrain/month.py); not a pipeline stage."""

    mode: Literal["refit", "continue"] = "refit"  # refit: from scratch; continue: more rounds/trees on the champion


class LimitsParams(Section):
    """What one client, and all of them together, may ask of `reprotab serve` (reprotab/serving/guard.py)."""

    max_rows: int = Field(10_000, ge=1)  # rows per /predict request; more: 413
    max_bytes: int = Field(5_000_000, ge=1)  # request body bytes; more: 413
    rate_per_second: float | None = Field(50.0, gt=0)  # requests per second per API key (none without keys)
    burst: int = Field(100, ge=1)  # requests a client may send at once above the rate; more: 429 with Retry-After
    # requests being handled at once; more: 503 with Retry-After (load shedding). 2: one event loop scores
    # small requests one at a time, so a deeper queue only adds latency (bench/overload.py)
    max_in_flight: int = Field(2, ge=1)
    timeout_seconds: float = Field(10.0, gt=0)  # a request not answered by then: 503 (its work is abandoned)


class PredictionLogParams(Section):
    """What the prediction log keeps (reprotab/serving/prediction_log.py): every field is a privacy choice."""

    enabled: bool = True  # false: nothing is written (monitor --from-log and labels join then have nothing to read)
    dir: str = "logs/predictions"
    fields: tuple[str, ...] | None = None  # allow-list of features kept; None = every feature
    exclude: tuple[str, ...] = ()  # deny-list: features never written
    hash: tuple[str, ...] = ()  # features (or the id column) written as a keyed sha256, joinable but not readable
    sample: float = Field(1.0, gt=0, le=1)  # share of requests logged (by request id: all of a request's rows or none)
    max_text: int = Field(256, ge=1)  # text values (and request ids) are cut to this many characters
    max_file_mb: float = Field(50.0, gt=0)  # a file rotates past this size
    retention_days: float | None = Field(30.0, gt=0)  # files older than this are deleted; None = kept
    retention_mb: float | None = Field(1024.0, gt=0)  # oldest files are deleted past this total; None = no bound

    @model_validator(mode="after")
    def _lists_agree(self) -> PredictionLogParams:
        both = sorted(set(self.fields or ()) & set(self.exclude))
        if both:
            raise ValueError(problem("serve.log.exclude", "names features serve.log.fields keeps", ", ".join(both)))
        return self


class ServeParams(Section):
    """`reprotab serve` (reprotab/serving/service.py); not a pipeline stage. Command-line flags override."""

    limits: LimitsParams = LimitsParams()
    log: PredictionLogParams = PredictionLogParams()
    poll_seconds: float = Field(10.0, ge=0)  # --stage: how often the registry is read for a new version (0 = never)


class CanaryParams(Section):
    """`reprotab canary decide`: promote, keep or roll back a canary from live labels (reprotab/registry/canary.py)."""

    metric: str | None = None  # None = the top-level metric
    min_labels: int = Field(200, ge=1)  # labelled rows each route needs before any verdict; fewer: keep collecting
    min_difference: float = Field(0.0, ge=0)  # promote when canary - champion is above this (direction-aware) ...
    confidence: float = Field(0.95, gt=0, lt=1)  # ... at this confidence (paired bootstrap's lower bound)
    bootstrap: int = Field(1000, ge=100)  # resamples of the difference's interval
    max_worsening: float | None = Field(None, gt=0)  # guard: roll back at once when the canary is this much worse
    auto_rollback: bool = False  # the service stops routing to a canary that passes the guard on /feedback labels


def registry(kind: str) -> Any:
    """The names a strategy key accepts (reprotab/params/names.py, which each implementing
    registry is held equal to)."""
    if kind == "models":
        return names.MODELS
    if kind == "model choices":
        return (*names.MODELS, AUTO, ENSEMBLE)
    if kind == "samplers":
        return (names.SAMPLERS[0], "auto", *names.SAMPLERS[1:])  # auto: resolved from the training target
    if kind == "tuners":
        return ("none", *names.TUNERS)
    if kind == "metrics":
        return dict(names.METRICS)
    raise KeyError(kind)


def _registered(where: str, value: Any, kind: str) -> Any:
    names = registry(kind)
    if value not in names:
        raise ValueError(one_of(where, value, names))
    return value
