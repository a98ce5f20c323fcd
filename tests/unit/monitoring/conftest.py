"""Fixtures of the monitor's tests: a small trained model and a workspace as `dvc repro` leaves it."""

from __future__ import annotations

import hashlib

import pytest

from reprotab.data.demo import generate
from reprotab.model import served
from reprotab.monitoring.reference import build, write
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from tests.helpers import base_params


@pytest.fixture(scope="module")
def trained():
    forest = {"random_forest": {"n_estimators": 30, "min_samples_leaf": 5, "n_jobs": 1}}
    return run(generate(rows=3000, seed=0), parse_params(base_params(model="random_forest", hyperparameters=forest)))


@pytest.fixture
def workspace(trained, tmp_path, monkeypatch):
    """A workspace as `dvc repro` leaves it: the model, its splits and its reference."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "data/prepared").mkdir(parents=True)
    served.save(trained.model, "models/model.zip")
    trained.splits["train"].to_parquet("data/prepared/train.parquet")
    trained.splits["test"].to_parquet("data/prepared/test.parquet")
    sha = hashlib.sha256((tmp_path / "models/model.zip").read_bytes()).hexdigest()
    summary = build(trained.model, trained.splits["train"], trained.splits["test"], model_sha256=sha, origin="")
    write(summary, "models/reference.json")
    return tmp_path
