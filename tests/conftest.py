"""Shared fixtures: tiny frames for unit tests, and a real temporary git + DVC repository
(a copy of this project on a small sample of the demo data) for integration tests. The helpers
they are built on (tests/helpers.py) are shared with the benches."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.params.loader import parse_params
from tests.helpers import base_params, make_repo, reproduced_repo

TESTS = Path(__file__).resolve().parent

# Scheduling hint for the two xdist workers (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml): test files run in this order, the longest first, so the workers finish together
# instead of one running the long retraining scenario alone at the end (about 100 s idle before).
# Seconds per file from `python3 run.py test --durations=0`; a file not listed runs after these.
# Only the order depends on it, never a result. Paths are relative to tests/.
LONGEST_FIRST = (
    "integration/test_pipeline.py",  # 127 s
    "integration/test_retrain_transaction.py",  # 126 s
    "integration/test_walkthrough.py",  # 115 s
    "integration/test_chaos.py",  # 108 s
    "integration/test_labels.py",  # 100 s
    "integration/test_engine_dask.py",  # 100 s (a LocalCluster, then dvc repro on dask)
    "integration/test_retraining.py",  # 81 s
    "integration/test_monitor_registry.py",  # 75 s
    "integration/test_service_contract.py",  # 90 s (schemathesis: 14,000 generated requests)
    "integration/test_compare.py",  # 68 s
    "integration/test_remote_s3.py",  # 62 s
    "integration/test_mirrors.py",  # 60 s
    "integration/test_registry.py",  # 54 s
    "integration/test_tune.py",  # 48 s
    "integration/test_evaluate.py",  # 36 s
    "integration/test_review.py",  # 33 s
    "integration/test_train.py",  # 31 s
    "integration/test_pseudo_labeling.py",  # 29 s
    "integration/test_service.py",  # 24 s
    "integration/test_hot_promotion.py",  # 20 s
    "integration/test_batches.py",  # 21 s
    "integration/test_stage_errors.py",  # 15 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order test files longest first (LONGEST_FIRST); tests inside a file keep their order."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.relative_to(TESTS).as_posix(), len(rank)))


@pytest.fixture
def params():
    return parse_params(base_params())


@pytest.fixture(scope="session")
def churn_small() -> pd.DataFrame:
    return generate(rows=600, seed=3)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A real git + DVC repository of this project with a 2,500-row sample; shared by a module."""
    return make_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, request) -> Path:
    """The module's own copy of the reproduced project (`reproduced_repo`)."""
    return reproduced_repo(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1])
