"""A month of `reprotab retrain` on a table kept as a folder of partitions: the batch becomes a new
partition (data/parts/batch=<name>/part-0.parquet, the folder added to DVC again), prepare processes
it alone, and a failed month removes it and gives the folder's .dvc file back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import DVC, promoted_repo, sh
from tests.integration.test_retraining import batch, edit_params, retrain, small_and_on_log_loss, subjects
from tests.unit.engine.test_partitions import write_parts

pytestmark = pytest.mark.integration


def as_partitions(repo: Path) -> None:
    """The demo table as a folder of two partitions, tracked by data/parts.dvc."""
    write_parts(repo / "data" / "parts", pd.read_parquet(repo / "data/raw/churn.parquet"), [700])
    sh([DVC, "add", "-q", "data/parts"], repo)


def on_partitions(params: dict) -> None:
    small_and_on_log_loss(params)
    params["data"]["path"] = "data/parts"


@pytest.fixture
def project(tmp_path) -> Path:
    """Month one on a folder data.path of two partitions: v1.0.0 in prod."""
    return promoted_repo(tmp_path / "repo", rows=1500, params=on_partitions, data=as_partitions)


def test_a_month_adds_its_batch_as_a_partition_and_prepare_processes_it_alone(project, tmp_path):
    repo = project
    retrain(repo, batch(tmp_path, "2026-03", seed=8, drift=1.0))
    summary = json.loads((repo / "reports/retrain/2026-03.json").read_text())
    assert summary["batch_path"] == "data/parts/batch=2026-03/part-0.parquet"
    assert summary["params_changes"] == []  # the folder is the table: data.batches.combine stays none
    prepared = json.loads((repo / "reports/prepare/summary.json").read_text())
    assert prepared["partitions"] == {"count": 3, "processed": 1, "reused": 2}
    assert prepared["data"]["rows"] == 3000
    added = subjects(repo).index("Add batch 2026-03")
    assert "data/parts.dvc" in sh(["git", "show", "--stat", f"HEAD~{added}"], repo).stdout
    assert sh(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    assert "up to date" in sh([DVC, "status", "data/parts.dvc"], repo).stdout


def test_a_failed_month_removes_the_partition_and_restores_the_folders_dvc_file(project, tmp_path):
    repo = project
    edit_params(repo, lambda p: p["hyperparameters"]["lightgbm"].update(num_leaves=1))
    sh(["git", "commit", "-q", "-am", "a broken edit"], repo)
    tracked = (repo / "data/parts.dvc").read_text()
    result = retrain(repo, batch(tmp_path, "2026-04", seed=9, drift=1.0), "--force", check=False)
    assert result.returncode == 2 and "retrain: stopped: `dvc repro` failed" in result.stderr
    assert not (repo / "data/parts/batch=2026-04").exists()
    assert (repo / "data/parts.dvc").read_text() == tracked
    assert sorted(p.parent.name for p in (repo / "data/parts").rglob("*.parquet")) == ["month=2026-01", "month=2026-02"]
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""


def test_an_untracked_folder_is_refused_before_anything_is_written(project, tmp_path):
    repo = project
    sh([DVC, "remove", "-q", "data/parts.dvc"], repo)  # the folder stays, no longer tracked on its own
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "untrack the folder"], repo)
    head = subjects(repo)[0]
    result = retrain(repo, batch(tmp_path, "2026-05", seed=9, drift=1.0), "--force", check=False)
    assert result.returncode == 2
    assert "data.path: is a folder not tracked by its own .dvc file" in result.stderr
    assert "`dvc add data/parts`" in result.stderr
    assert subjects(repo)[0] == head and not (repo / "data/parts/batch=2026-05").exists()


def test_a_batch_from_inside_the_folder_is_refused(project):
    repo = project
    inside = repo / "data/parts/month=2026-01/part-0.parquet"
    result = retrain(repo, inside, "--force", check=False)
    assert result.returncode == 2 and "--batch: is inside the data.path folder" in result.stderr
    assert inside.is_file()  # a failed month would have removed the only copy
