"""Helpers shared by the batch scoring, service and container tests: a small trained model
on disk, rows to send, and a real `reprotab serve` process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

from reprotab.data.demo import generate
from reprotab.model import served
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from tests.conftest import ROOT, base_params

FEW_TREES = {"n_estimators": 10, "min_samples_leaf": 5, "max_features": "sqrt", "n_jobs": 1}


def train_model(directory: Path, *, seed: int = 1, rows: int = 800) -> Path:
    """A small random forest trained in-process, saved as directory/model.joblib + model.json."""
    params = parse_params(base_params(seed=seed, model="random_forest", hyperparameters={"random_forest": FEW_TREES}))
    result = run(generate(rows=rows, seed=seed), params, splits_to_score=())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.joblib"
    served.save(result.model, path)
    meta = {"git_commit": f"commit-{seed}", "training_data_hash": f"hash-{seed}", "model": "random_forest"}
    (directory / "model.json").write_text(json.dumps(meta))
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
def server(args: list[str], *, cwd: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run `args` (a serve command) until /ready answers; yield its base URL; stop it after."""
    port = free_port()
    command = [a.replace("{port}", str(port)) for a in args]
    process = subprocess.Popen(
        command, cwd=cwd, env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited {process.returncode}:\n{process.stdout.read()}")
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


def serve_command(model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reprotab", "serve", "--model", str(model), "--port", "{port}", *extra]


def frame_of(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)
