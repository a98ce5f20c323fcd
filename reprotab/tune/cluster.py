"""Trials on a Dask cluster (engine: dask): `tune.n_jobs` tasks adding trials to one shared study.

The search's folds (built once on this process from the hashed training sample, reprotab/tune/
search.py `plan`) travel to every worker once; each of `tune.n_jobs` tasks, spread over the workers
in their stable order, opens the same study (the journal file, which every worker of a local
cluster reaches, or `tune.storage`'s database for a remote one) and runs trials until the study
holds its target, so `tune.n_jobs` is the number of trials in flight. Each task's sampler is seeded
with `seed` + its index: tasks with one seed would propose the same first points. The order in
which trials finish depends on the workers' speed, so a parallel search is not repeatable trial
for trial, as `n_jobs` > 1 in one process is not; what it chose is confirmed as usual.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from reprotab.engine.cluster import workers_of
from reprotab.params.sections import TuneParams
from reprotab.tune import search as tuning
from reprotab.tune.studies import FINISHED
from reprotab.tune.tuners import TUNERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialTask:
    """What one task needs to add trials to the study on a worker (picklable)."""

    search: tuning.Search
    spaces: dict[str, dict[str, Any]]
    tuner: str
    config: TuneParams
    reopen: Callable[[], Any]  # the study's storage, opened again on the worker
    name: str
    target: int

    def __call__(self, index: int) -> str:
        spec = TUNERS[self.tuner]
        study = optuna.load_study(
            study_name=self.name,
            storage=self.reopen(),
            sampler=spec.sampler(tuning.sampler_space(spec, self.spaces, self.search), self.search.seed + index),
            pruner=tuning.pruner(spec, self.config, self.search),
        )
        study.optimize(
            tuning.Objective(self.search, self.spaces),
            n_trials=self.target,
            timeout=self.config.timeout_minutes * 60 if self.config.timeout_minutes else None,
            callbacks=tuning.callbacks(study, spec, self.config, self.search, self.target),
        )
        return tuning.WORKER


def _run(task: TrialTask, index: int) -> str:
    return task(index)


def optimize_on_cluster(client: Any, task: TrialTask) -> None:
    """`task.config.n_jobs` tasks over the cluster's workers, until the study holds its target."""
    workers = workers_of(client)
    shared = client.scatter(task, broadcast=True)  # the folds travel once per worker
    futures = [
        client.submit(_run, shared, index, workers=[workers[index % len(workers)]], pure=False)
        for index in range(task.config.n_jobs)
    ]
    client.gather(futures)
    study = optuna.load_study(study_name=task.name, storage=task.reopen())
    ran = Counter(t.user_attrs.get("worker") for t in study.get_trials(deepcopy=False, states=FINISHED))
    log.info(
        "dask: %d tasks on %d workers; the study holds %d finished trials (%s)",
        task.config.n_jobs,
        len(workers),
        sum(ran.values()),
        ", ".join(f"{worker}: {count}" for worker, count in sorted(ran.items(), key=str)),
    )
