"""Helpers shared by the tests (tests/conftest.py builds its fixtures on them) and the benches
(bench/): the shipped params with overrides, subprocess environments, real temporary git + DVC
copies of this project (plain, reproduced, or with a promoted champion), and for batch scoring,
the service and the container a small trained model, rows to send and a real `reprotab serve`
process on 127.0.0.1. Model libraries load only when a helper that trains is called."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pandas as pd
import pytest
import yaml
from filelock import FileLock

from reprotab.data.demo import generate

ROOT = Path(__file__).resolve().parents[1]

DVC = str(Path(sys.executable).parent / "dvc")  # the environment's own dvc, which runs this python

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
}


def base_params(**overrides) -> dict:
    """params.yaml as shipped, with top-level or section overrides merged in."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


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


def promoted_repo(
    path: Path, *, rows: int, params: Callable[[dict], None], data: Callable[[Path], None] | None = None
) -> Path:
    """Month one of the loop: a project copy of `rows` demo rows (`data` may reshape them in the
    copy first), `params` applied to params.yaml, reproduced, committed, v1.0.0 registered and
    promoted to prod (its frozen reference set pinned)."""
    from reprotab.registry import versions as registry

    repo = make_repo(path, rows=rows)
    if data is not None:
        data(repo)
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


FEW_TREES = {"n_estimators": 10, "min_samples_leaf": 5, "max_features": "sqrt", "n_jobs": 1}


def tagged_registry(path: Path, models: dict[str, bytes], *, gate: dict[str, bool] | None = None) -> Path:
    """A git + DVC repository whose GTO tags register one model file per commit, its sha256 pinned
    as `reprotab registry register` pins it, with the gate's decision at each commit (yes unless
    `gate` says no) and a frozen reference pinned; nothing is trained and nothing promoted."""
    import gto.api

    from reprotab.data.tables import file_hash

    path.mkdir(parents=True, exist_ok=True)
    sh(["git", "init", "-q", "-b", "main"], path)
    sh(["git", "config", "user.name", "tests"], path)  # tags written in-process need an identity
    sh(["git", "config", "user.email", "tests@localhost"], path)
    sh([DVC, "init", "-q"], path)
    shutil.copy(ROOT / ".gto", path / ".gto")
    (path / "dvc.yaml").write_text(
        yaml.safe_dump({"artifacts": {"model": {"path": "models/model.zip", "type": "model"}}})
    )
    reference = {"commit": "0" * 40, "path": "data/prepared/test.parquet", "rows_hash": "frozen", "rows": 100}
    (path / "models").mkdir()
    (path / "models/champion.json").write_text(json.dumps({"version": None, "reference": reference}))
    (path / "reports/gate").mkdir(parents=True)
    for version, content in models.items():
        decision = {
            "promote": (gate or {}).get(version, True),
            "reason": "test",
            "champion": {"version": None},
            "rules": [],
        }
        (path / "reports/gate/decision.json").write_text(json.dumps(decision))
        (path / "models/model.zip").write_bytes(content)  # a commit of its own for each version
        sh(["git", "add", "-A"], path)
        sh(["git", "commit", "-q", "-m", version], path)
        commit = sh(["git", "rev-parse", "HEAD"], path).stdout.strip()
        meta = json.dumps({"action": "register", "sha256": file_hash(path / "models/model.zip")})
        gto.api.register(
            str(path), "model", commit, version=version, message=f"Register model {version}\n\nreprotab: {meta}"
        )
    return path


def train_model(directory: Path, *, seed: int = 1, rows: int = 800) -> Path:
    """A small random forest trained in-process, saved as directory/model.zip + model.json."""
    from reprotab.model import served
    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run

    params = parse_params(base_params(seed=seed, model="random_forest", hyperparameters={"random_forest": FEW_TREES}))
    result = run(generate(rows=rows, seed=seed), params, splits_to_score=())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.zip"
    served.save(result.model, path)
    assert result.card is not None
    result.card.write(directory / "model.json")
    return path


def request_rows(count: int, *, seed: int = 7) -> list[dict]:
    """Feature rows as a client sends them (JSON types; NaN → null)."""
    frame = generate(rows=count, seed=seed).drop(columns=["customer_id", "churned", "next_month_spend"])
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env() -> dict:
    """This checkout first on the path, whatever the installed `reprotab` points at."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


@contextmanager
def server(args: list[str], *, cwd: Path, timeout: float = 60.0, output: Path | None = None) -> Iterator[str]:
    """Run `args` (a serve command) until /ready answers; yield its base URL; stop it after. Its
    output goes to a pipe, or to the file `output` for a server that logs a lot (a pipe nobody
    reads would stall it)."""
    port = free_port()
    command = [a.replace("{port}", str(port)) for a in args]
    sink = output.open("w") if output else subprocess.PIPE
    process = subprocess.Popen(command, cwd=cwd, env=server_env(), stdout=sink, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                said = output.read_text() if output else process.stdout.read()  # type: ignore[union-attr]
                raise AssertionError(f"server exited {process.returncode}:\n{said}")
            try:
                if httpx.get(f"{url}/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("server did not become ready in time")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output:
            sink.close()  # type: ignore[union-attr]


def serve_command(model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reprotab", "serve", "--model", str(model), "--port", "{port}", *extra]


def frame_of(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)


MODEL_CARD = {  # a whole model card (reprotab/model/card.py) for tests that need one on disk
    "model": "lightgbm",
    "task": "classification",
    "target": "churned",
    "features": {"numeric": ["tenure"], "categorical": ["plan"]},
    "model_features": ["tenure", "plan_basic"],
    "classes": [False, True],
    "positive_class": True,
    "hyperparameters": {"n_estimators": 300},
    "format_version": 2,
    "tuned_by": "none",
    "trained_on": ["train", "validation"],
    "trained_on_rows": {"train": 80, "validation": 20},
    "training_rows": 100,
    "training_data_hash": "abc",
    "libraries": {"lightgbm": "4.7.0"},
    "threshold": 0.31,
    "training": {"sampler_used": "none"},
}


def reference_of(result):
    """The drift reference of a `reprotab.pipeline.run` result, as the reference stage builds it: its training
    split and its model's scores on the test split."""
    from reprotab.monitoring.reference import build

    return build(result.model, result.splits["train"], result.splits["test"], model_sha256=None, origin="test run")
