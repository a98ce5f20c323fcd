"""The Dask cluster a stage runs on: a local one it starts, or a running scheduler it joins.

A local cluster listens on 127.0.0.1 with its dashboard off and lives as long as the stage.
Workers are returned in a stable order (by name, which a local cluster numbers 0, 1, ...), so
partitions pinned to "worker k" land on the same worker in every run: XGBoost's distributed
training is reproducible given the same partitioning, order and workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from reprotab.errors import UserError, problem
from reprotab.params.sections import DaskParams

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def open_client(settings: DaskParams) -> Iterator[Any]:
    """A `distributed.Client`: on a new local cluster (address null) or on `settings.address`.
    A local worker past `memory_limit` spills to disk, then pauses; its nanny restarts it."""
    import dask

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("distributed")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # its INFO lines would bury the stage's own
    # The estimators find the classes with a small shuffle; the task-based one does not log a warning
    # per shuffle as the peer-to-peer one does.
    with dask.config.set({"dataframe.shuffle.method": "tasks"}):
        yield from _client(settings)


def _client(settings: DaskParams) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if settings.address:
        try:
            client = Client(settings.address, timeout="20s")
        except OSError as exc:
            fix = "Start the scheduler, or set dask.address: null for a local cluster"
            raise UserError(problem("dask.address", f"no scheduler answers ({exc})", settings.address, fix)) from None
        with client:
            log.info("dask: joined %s (%d workers)", settings.address, len(workers_of(client)))
            yield client
        return
    cluster = LocalCluster(
        n_workers=settings.n_workers,
        threads_per_worker=settings.threads_per_worker,
        memory_limit=settings.memory_limit,
        host="127.0.0.1",
        dashboard_address=None,
        processes=True,
        silence_logs=logging.WARNING,
    )
    with cluster, Client(cluster) as client:
        log.info(
            "dask: local cluster of %d workers × %d threads, %s each",
            settings.n_workers,
            settings.threads_per_worker,
            settings.memory_limit,
        )
        yield client


@contextmanager
def engine_client(engine: str, settings: DaskParams) -> Iterator[Any]:
    """The client for `engine` dask, None for local (work then runs in this process)."""
    if engine != "dask":
        yield None
        return
    with open_client(settings) as client:
        yield client


def workers_of(client: Any) -> list[str]:
    """The cluster's worker addresses in a stable order: by worker name, then address."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return sorted(info, key=lambda address: (str(info[address].get("name")), address))


def run_all(function: Callable[[T], R], items: Iterable[T], client: Any = None) -> list[R]:
    """`function` over `items`, in order: in this process without a client, else on the cluster."""
    items = list(items)
    if client is None:
        return [function(item) for item in items]
    futures = client.map(function, items, pure=False)
    return list(client.gather(futures))
