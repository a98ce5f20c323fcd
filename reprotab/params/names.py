"""The names each strategy key of params.yaml accepts, declared apart from the code that
implements them.

Loading params validates these names, and every stage loads params; if the loader imported the
registries themselves, each stage would list the sampler, model, tuner and metric code among its
DVC deps, so editing SMOTE's builder would re-run prepare. Each registry implements exactly the
names here: `reprotab.train.families.MODELS`, `reprotab.train.sampling.SAMPLERS`,
`reprotab.tune.tuners.TUNERS`, `reprotab.stats.metrics.BY_TASK`
(tests/unit/params/test_params.py holds each equal, in order, to its line below).
"""

from __future__ import annotations

AUTO = "auto"  # `model: auto`: tune's search also chooses the family, among every entry of MODELS
ENSEMBLE = "ensemble"  # `model: ensemble`: a weighted blend of the search's best trials across families
SEARCHES_FAMILIES = (AUTO, ENSEMBLE)  # model values whose search draws the family of each trial
MODELS = ("random_forest", "xgboost", "lightgbm", "catboost", "linear")
DASK_MODELS = ("xgboost", "lightgbm")  # engine: dask trains these on the cluster (reprotab/engine/train.py)
SAMPLERS = (
    "none",
    "random_over",
    "smote",
    "adasyn",
    "borderline_smote",
    "random_under",
    "smote_tomek",
    "smote_enn",
)
TUNERS = ("grid", "random", "optuna")
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


def families(model: str) -> tuple[str, ...]:
    """The model families a `model:` value covers: every registered one for auto and ensemble, else itself."""
    return MODELS if model in SEARCHES_FAMILIES else (model,)
