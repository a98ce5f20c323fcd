"""Shared fixtures: tiny frames for unit tests, and a real temporary git + DVC repository
(a copy of this project on a small sample of the demo data) for integration tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import yaml
from filelock import FileLock

from reprotab.data.demo import generate
from reprotab.params.loader import parse_params

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")  # the environment's own dvc, which runs this python
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
}


# Scheduling hint for the two xdist workers (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml): test files run in this order, the longest first, so the workers finish together
# instead of one running the long retraining scenario alone at the end (about 100 s idle before).
# Seconds per file from `python3 run.py test --durations=0`; a file not listed runs after these.
# Only the order depends on it, never a result.
LONGEST_FIRST = (
    "test_pipeline.py",  # 127 s
    "test_retrain_transaction.py",  # 126 s
    "test_walkthrough.py",  # 115 s
    "test_chaos.py",  # 108 s
    "test_labels.py",  # 100 s
    "test_retraining.py",  # 81 s
    "test_monitor_registry.py",  # 75 s
    "test_compare.py",  # 68 s
    "test_remote_s3.py",  # 62 s
    "test_mirrors.py",  # 60 s
    "test_registry.py",  # 54 s
    "test_tune.py",  # 48 s
    "test_evaluate.py",  # 36 s
    "test_review.py",  # 33 s
    "test_train.py",  # 31 s
    "test_pseudo_labeling.py",  # 29 s
    "test_service.py",  # 24 s
    "test_batches.py",  # 21 s
    "test_stage_errors.py",  # 15 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order test files longest first (LONGEST_FIRST); tests inside a file keep their order."""
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def base_params(**overrides) -> dict:
    """params.yaml as shipped, with top-level or section overrides merged in."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


@pytest.fixture
def params():
    return parse_params(base_params())


@pytest.fixture(scope="session")
def churn_small() -> pd.DataFrame:
    return generate(rows=600, seed=3)


def tool_env(extra: dict | None = None) -> dict:
    """Environment for subprocesses: this interpreter's bin first (so dvc runs our python)."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        **GIT_IDENTITY,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        **(extra or {}),
    }


def sh(args: list[str], cwd: Path, *, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=tool_env(env), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_repo(path: Path, *, rows: int | None = 2500) -> Path:
    """Copy the tracked project files into `path`, shrink the data, and commit as a fresh repo."""
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in tracked.splitlines():
        source = ROOT / name
        if source.is_file() and not name.startswith(("tests/", "bench/")):
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, path / name)
    full = pd.read_parquet(ROOT / "data/raw/churn.parquet")
    if rows is not None:  # None keeps the full demo table (the benchmark)
        full.sample(rows, random_state=0).to_parquet(path / "data/raw/churn.parquet", index=False)
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-q", "-m", "project copy"], path)
    return path


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def promoted_repo(path: Path, *, rows: int, params: Callable[[dict], None]) -> Path:
    """Month one of the loop: a project copy of `rows` demo rows, `params` applied to params.yaml,
    reproduced, committed, v1.0.0 registered and promoted to prod (its frozen reference set pinned)."""
    from reprotab.registry import versions as registry

    repo = make_repo(path, rows=rows)
    settings = yaml.safe_load((repo / "params.yaml").read_text())
    params(settings)
    (repo / "params.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    sh([DVC, "repro", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "month 1"], repo)
    registry.register(repo)
    registry.promote(repo, version="v1.0.0", stage="prod")
    sh(["git", "commit", "-q", "-am", "champion v1.0.0"], repo)
    return repo


def reproduced_repo(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of the project (2,500 rows) reproduced and committed. The pipeline runs once
    per test session, shared by the xdist workers; each caller gets its own copy to change. The copy
    carries the DVC cache and run cache, so a caller's `dvc repro` or `dvc exp run` re-runs only the
    stages its own edits touch."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker has its own basetemp under one session dir
        shared = shared.parent
    template = shared / "reproduced-project"
    with FileLock(str(shared / "reproduced-project.lock")):
        if not template.exists():
            building = make_repo(tmp_path_factory.mktemp("reproducing"))
            sh([DVC, "repro"], building)
            sh(["git", "add", "-A"], building)
            sh(["git", "commit", "-q", "-m", "reproduced"], building)
            building.rename(template)
    copy = tmp_path_factory.mktemp(name)
    shutil.copytree(template, copy, symlinks=True, dirs_exist_ok=True)
    return copy


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A real git + DVC repository of this project with a 2,500-row sample; shared by a module."""
    return make_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, request) -> Path:
    """The module's own copy of the reproduced project (`reproduced_repo`)."""
    return reproduced_repo(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1])
