"""`reprotab monitor --stage prod` / `--version` for real: a temporary git + DVC repository,
`dvc repro`, v1.0.0 registered and promoted; then the workspace moves on (another model and other
prepared splits, uncommitted) and the monitor must still judge v1.0.0 on v1.0.0's own training
split (summarized in the drift reference train stored), test split, test metrics and importance,
read at its commit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.model import served
from reprotab.monitoring.inputs import inputs
from reprotab.monitoring.report import main
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from tests.helpers import base_params, promoted_repo, sh

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    def small(params: dict) -> None:
        params["hyperparameters"]["lightgbm"].update(n_estimators=60, n_jobs=1)
        params["monitor"]["bootstrap"] = 100

    return promoted_repo(tmp_path_factory.mktemp("monitor-prod"), rows=1500, params=small)


def test_monitor_judges_the_registered_model_on_its_own_data(project, tmp_path, monkeypatch, capsys):
    repo = project
    commit = sh(["git", "rev-list", "-n", "1", "model@v1.0.0"], repo).stdout.strip()
    prod_train = pd.read_parquet(repo / "data/prepared/train.parquet")
    prod_test = pd.read_parquet(repo / "data/prepared/test.parquet")
    prod_metrics = json.loads((repo / "reports/evaluate/metrics.json").read_text())["test"]
    prod_importance = pd.read_csv(repo / "reports/evaluate/tables/importance.csv")
    prod_scores = served.load(repo / "models/model.zip").predict_proba(prod_test)
    # The workspace moves on: another model and other prepared splits, not committed.
    forest = {"random_forest": {"n_estimators": 10, "n_jobs": 1}}
    other = run(generate(rows=500, seed=5), parse_params(base_params(model="random_forest", hyperparameters=forest)))
    served.save(other.model, repo / "models/model.zip")
    other.splits["train"].to_parquet(repo / "data/prepared/train.parquet")
    other.splits["test"].to_parquet(repo / "data/prepared/test.parquet")
    assert len(other.splits["train"]) != len(prod_train)
    generate(rows=800, seed=21).to_parquet(tmp_path / "november.parquet")
    monkeypatch.chdir(repo)

    main(["--batch", str(tmp_path / "november.parquet"), "--stage", "prod", "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out/november/drift.json").read_text())
    assert report["model"]["version"] == "v1.0.0" and report["model"]["commit"] == commit
    assert "stage prod" in report["model"]["source"]
    assert report["reference_rows"] == len(prod_train) and report["prediction"]["holdout_rows"] == len(prod_test)
    assert report["performance"]["headline"]["test"] == prod_metrics["roc_auc"]
    assert report["performance"]["judged"]["log_loss"]["test"] == prod_metrics["log_loss"]
    assert f"model: v1.0.0 (commit {commit[:12]})" in capsys.readouterr().out
    assert f"Model judged: **v1.0.0** (commit {commit[:12]}" in (tmp_path / "out/november/drift.md").read_text()

    by_version = inputs(repo=repo, version="v1.0.0")
    assert (by_version.version, by_version.commit, by_version.reference.rows) == ("v1.0.0", commit, len(prod_train))
    assert by_version.reference.origin == f"models/reference.json at {commit[:8]}"  # train's, not the rows
    assert report["reference"] == by_version.reference.origin
    np.testing.assert_array_equal(by_version.model.predict_proba(prod_test), prod_scores)
    expected = prod_importance.set_index("feature")["permutation"].astype(float).fillna(0.0)
    pd.testing.assert_series_equal(by_version.importance, expected)

    workspace = inputs()  # the default: the workspace's files, named by the model file's digest
    assert workspace.version.startswith("local:") and workspace.reference.rows == len(other.splits["train"])
    assert "workspace" in workspace.source
    # models/reference.json is v1.0.0's, of another model file: rebuilt from the workspace's splits
    assert workspace.reference.origin.startswith("built from data/prepared/train.parquet")
