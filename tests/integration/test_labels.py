"""`reprotab labels import` as the labeling steps of docs/operations/labeling.md use it, in a real
git + DVC repository: imported labels are versioned and reach training through the commands the
import prints."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from reprotab.data.demo import generate
from tests.helpers import DVC, make_repo, sh

pytestmark = pytest.mark.integration


def reprotab(repo: Path, *args: str, check: bool = True):
    return sh([sys.executable, "-m", "reprotab", *args], repo, check=check)


def test_imported_labels_are_versioned_and_train_the_next_model(tmp_path):
    repo = make_repo(tmp_path / "project", rows=1500)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["batches"]["combine"] == "none"  # as shipped
    params["hyperparameters"]["lightgbm"].update(n_estimators=60, n_jobs=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh([DVC, "repro", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "trained"], repo)
    pool = generate(rows=300, seed=9).drop(columns=["churned", "next_month_spend"])
    pool["customer_id"] = "p-" + pool["customer_id"].astype(str)
    pool.to_csv(tmp_path / "pool.csv", index=False)

    # the docs' step 1: the queue
    reprotab(repo, "query", "--pool", str(tmp_path / "pool.csv"), "--n", "40")
    queue = pd.read_csv(repo / "labeling/queue.csv")

    # an untouched queue: one message, nothing written
    untouched = reprotab(repo, "labels", "import", "labeling/queue.csv", check=False)
    assert untouched.returncode == 2
    errors = [line for line in untouched.stderr.splitlines() if "ERROR" in line or "Got" in line]
    assert errors == [
        "[labels] ERROR labels file: has no label filled in (the label column is empty in all 40 rows). "
        "Fill the label column of the queue file, or pass the Label Studio JSON export."
    ]
    assert sorted(p.name for p in (repo / "data/batches").iterdir()) == [".gitkeep"]

    # the docs' step 2: 30 of the 40 rows labeled
    labels = np.where(np.arange(len(queue)) % 3 == 0, "True", "False").astype(object)
    labels[30:] = None
    queue.assign(label=labels).to_csv(repo / "labeling/filled.csv", index=False)
    done = reprotab(repo, "labels", "import", "labeling/filled.csv")
    (batch,) = (repo / "data/batches").glob("*-labels.parquet")
    assert (repo / "data/batches" / f"{batch.name}.dvc").is_file()  # versioned like any batch
    assert batch.name in (repo / "data/batches/.gitignore").read_text()
    assert yaml.safe_load((repo / "params.yaml").read_text())["data"]["batches"]["combine"] == "all"

    # the docs' step 3: exactly what the import printed, and the tree is clean after the commit
    lines = done.stdout.splitlines()
    assert lines[0] == f"30 labeled rows versioned as data/batches/{batch.name}. Next:"
    commit_line, repro_line = lines[1].strip(), lines[2].strip()
    add, commit = commit_line.split(" && ")
    sh(shlex.split(add), repo)
    sh(shlex.split(commit), repo)
    assert sh(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    assert repro_line.startswith("dvc repro ")
    sh([DVC, "repro", "-q"], repo)

    data = json.loads((repo / "reports/prepare/summary.json").read_text())["data"]
    assert data["combine"] == "all" and data["rows"] == 1530
    assert [(b["name"], b["rows"]) for b in data["batches"]] == [(batch.name, 30)]
