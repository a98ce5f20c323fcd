"""The project's well-known paths, relative to the repository root: the one place each is spelled.

Three kinds, as tests/unit/test_paths.py holds them against dvc.yaml:
- `OUTPUTS`: files and folders a pipeline stage writes (its `outs`, `metrics` or a file inside
  an out folder), which the commands outside the pipeline read, here or at a past commit;
- `INPUTS`: what the pipeline reads but no stage writes (the champion pin, written by
  `reprotab registry promote`; the default batches folder, `data.batches.dir` in params.yaml);
- `OPERATIONS`: what the commands outside the pipeline write (retrain and monitor reports, retired
  batches, the model a `retrain --mode continue` starts from); no stage may claim them.

Strings, not Paths: they name the same file in the workspace, in `git show <commit>:<path>`
and in `dvc.api.open(path, rev=...)`.
"""

from __future__ import annotations

# pipeline outputs
VALIDATED_PARAMS = "reports/validate/params.json"
PREPARED = "data/prepared"
TRAIN = f"{PREPARED}/train.parquet"
VALIDATION = f"{PREPARED}/validation.parquet"
TEST = f"{PREPARED}/test.parquet"
SCHEMA = f"{PREPARED}/schema.json"
PREPARE_SUMMARY = "reports/prepare/summary.json"
BEST_PARAMS = "models/best_params.json"
MODEL = "models/model.zip"
JUDGED = "models/judged.zip"  # the model the test split judged: model.zip itself unless train.refit is all
MODEL_META = "models/model.json"
DRIFT_REFERENCE = "models/reference.json"  # the monitor's reference: training split and test scores, summarized
TRAIN_METRICS = "reports/train/metrics.json"
EVALUATE_METRICS = "reports/evaluate/metrics.json"
IMPORTANCE = "reports/evaluate/tables/importance.csv"
EVALUATE_PLOTS = "reports/evaluate/plots"
FIGURES = "reports/evaluate/figures"
GATE_DIR = "reports/gate"
GATE_DECISION = f"{GATE_DIR}/decision.json"
GATE_DECISION_MD = f"{GATE_DIR}/decision.md"

# pipeline inputs no stage writes
CHAMPION = "models/champion.json"
BATCHES = "data/batches"

# written by the commands outside the pipeline
PREVIOUS_MODEL = "models/previous.zip"
RETIRED = "data/retired"
RETIRED_LOG = f"{RETIRED}/log.json"
RETRAIN_REPORTS = "reports/retrain"
MONITOR_REPORTS = "reports/monitor"

OUTPUTS = (
    VALIDATED_PARAMS,
    PREPARED,
    TRAIN,
    VALIDATION,
    TEST,
    SCHEMA,
    PREPARE_SUMMARY,
    BEST_PARAMS,
    MODEL,
    JUDGED,
    MODEL_META,
    DRIFT_REFERENCE,
    TRAIN_METRICS,
    EVALUATE_METRICS,
    IMPORTANCE,
    EVALUATE_PLOTS,
    FIGURES,
    GATE_DIR,
    GATE_DECISION,
    GATE_DECISION_MD,
)
INPUTS = (CHAMPION, BATCHES)
OPERATIONS = (PREVIOUS_MODEL, RETIRED, RETIRED_LOG, RETRAIN_REPORTS, MONITOR_REPORTS)


def retrain_summary(batch: str, suffix: str) -> str:
    """A month's summary: reports/retrain/<batch>.json or .md."""
    return f"{RETRAIN_REPORTS}/{batch}.{suffix}"


def monitor_report(name: str) -> str:
    """The folder of one monitor report: reports/monitor/<name>."""
    return f"{MONITOR_REPORTS}/{name}"
