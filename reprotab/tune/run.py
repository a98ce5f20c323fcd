"""The tune stage's search as one function: plan the folds, run the study, choose and confirm.

`run_search` is what `python -m stages.tune` and reprotab/pipeline.py both call (a study file or
a shared database for the stage, memory for the in-process pipeline); the shell only wires files
to it. With `model: ensemble` the trials' out-of-fold predictions are kept for the blend
(reprotab/tune/blend.py); a worker only adds trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
import pandas as pd

from reprotab.model.schema import Schema
from reprotab.params.names import ENSEMBLE
from reprotab.tune import confirm
from reprotab.tune import search as tuning


def run_search(
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    schema: Schema,
    params: Any,
    storage: Any,
    study_file: str,
    worker: bool = False,
    client: Any = None,
    reopen: Callable[[], Any] | None = None,
) -> tuple[optuna.Study, dict[str, Any] | None]:
    """The study, and what tune hands to train (models/best_params.json's record; None for a worker).
    `params` is tune's view of params.yaml. With a Dask `client` the trials run on its workers,
    each opening the study's storage with `reopen` (reprotab/tune/cluster.py)."""
    search, spaces, name = tuning.plan(train=train, validation=validation, schema=schema, params=params)
    predictions: dict | None = {} if params.model == ENSEMBLE and not worker else None
    study = tuning.run(
        search=search,
        tuner=params.tuner,
        spaces=spaces,
        config=params.tune,
        storage=storage,
        name=name,
        predictions=predictions,
        client=client,
        reopen=reopen,
    )
    if worker:
        return study, None
    best = confirm.result(
        study, search=search, predictions=predictions, train=train, validation=validation, params=params
    )
    return study, tuning.result_record(best, params=params, search=search, name=name, study_file=study_file)
