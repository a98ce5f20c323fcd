"""The whole pipeline in one process: `run(frame, params)` → the served model and its metrics.

The same library calls the stages make (prepare → tune → train → evaluate's
scoring), without files or DVC. Tests, benchmarks and the retraining loop use it when they
need a model quickly; `dvc repro` stays the way to produce a versioned one. The numbers match
a `dvc repro` with the same params and data (a test holds the two together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reprotab.data.prepare import prepare_with
from reprotab.evaluate.scores import measure
from reprotab.model.card import ModelCard
from reprotab.model.schema import Schema
from reprotab.model.served import TabularModel
from reprotab.params.loader import Params
from reprotab.train.run import frame_splits, run_train
from reprotab.tune.best import BestParams
from reprotab.tune.report import no_search


@dataclass
class Run:
    """What one in-process run produced."""

    model: TabularModel
    metrics: dict[str, dict[str, float]]  # split → metric → value (validation and test) of the judged model
    schema: Schema
    splits: dict[str, pd.DataFrame]
    training: dict[str, Any] = field(default_factory=dict)  # train's summary (sampler, threshold, ...)
    tuned: dict[str, Any] = field(default_factory=dict)  # tune's best params ({} with tuner none)
    tune_record: dict[str, Any] = field(default_factory=dict)  # what tune would write as models/best_params.json
    family: str = ""  # the model family fitted (with model auto, the one tune chose)
    card: ModelCard | None = None  # what train would write as models/model.json
    judged: TabularModel | None = None  # what the test split judges: `model` itself unless train.refit is all


def tune_best(*, splits: dict[str, pd.DataFrame], schema: Schema, params: Params) -> dict[str, Any]:
    """Tune's best result for these splits (family, params, scores), in memory (an in-memory Optuna
    study); {} with tuner none."""
    if params.tuner == "none":
        return {}
    from reprotab.tune.run import run_search  # imports Optuna: only when a search runs

    _, record = run_search(
        train=splits["train"],
        validation=splits["validation"],
        schema=schema,
        params=params,
        storage=None,
        study_file="in memory",
    )
    return record or {}


def run(frame: pd.DataFrame, params: Params, *, splits_to_score: tuple[str, ...] = ("validation", "test")) -> Run:
    """prepare → tune → train on `frame` with `params`; scores the given splits."""
    splits, schema, _ = prepare_with(frame, params)
    best = BestParams.from_dict(tune_best(splits=splits, schema=schema, params=params) or no_search(model=params.model))
    trained = run_train(schema=schema, best=best, params=params, read_split=frame_splits(splits))
    # the judged model: with train.refit all the shipped one trained on the test rows too
    metrics = {split: measure(trained.judged, splits[split])[1] for split in splits_to_score}
    return Run(
        model=trained.model,
        metrics=metrics,
        schema=schema,
        splits=splits,
        training=trained.summary,
        tuned=dict(best.params),
        tune_record=best.to_dict(),
        family=trained.family,
        card=trained.card,
        judged=trained.judged,
    )


STAGES = ("validate", "profile", "prepare", "tune", "train", "reference", "evaluate", "gate")  # dvc.yaml's order


def run_stages(stages: tuple[str, ...] = STAGES) -> None:
    """Every stage's `main`, in dvc.yaml's order, in this one process, reading and writing the same
    files: the work `dvc repro --force` does, without DVC and the per-stage process start-ups.
    bench/pipeline.py times it against `dvc repro` to show what the stage graph costs."""
    import importlib

    for name in stages:
        importlib.import_module(f"stages.{name}").main([])
