"""`reprotab labels import` as the README's labeling steps use it: batch names that keep arrival
order, one message for an untouched queue, and, in a real git + DVC repository, imported labels
that are versioned and reach training through the commands the import prints."""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from reprotab.data.demo import generate
from reprotab.data.prepare import choose_batches
from reprotab.errors import UserError
from reprotab.labeling.labels import batch_path, validate_labels
from reprotab.retrain.summary import batch_name
from tests.conftest import DVC, make_repo, sh


def test_imported_batches_sort_in_arrival_order_beside_monthly_batches():
    def imported(*when: int) -> str:
        return batch_path("data/batches", datetime(*when, tzinfo=UTC)).name

    arrivals = [  # as they arrive: a month's file once the month is over, imports on the day
        "2026-09.parquet",
        imported(2026, 10, 14, 9, 30),
        imported(2026, 10, 30, 23, 59, 59),
        "2026-10.parquet",
        imported(2026, 11, 2, 8),
        "2026-11.csv",
        imported(2026, 12, 1, 0, 0, 1),
    ]
    assert arrivals[1] == "2026-10-14T093000Z-labels.parquet"
    shuffled = [arrivals[k] for k in (6, 3, 0, 5, 2, 4, 1)]
    assert choose_batches(shuffled, combine="all", window=3) == arrivals
    assert choose_batches(shuffled, combine="window", window=2) == arrivals[-2:]
    assert batch_name(arrivals[1]) == "2026-10-14T093000Z-labels"  # `reprotab retrain` accepts the name too


@pytest.mark.parametrize("empty", [np.nan, ""])
def test_an_untouched_queue_is_one_message(empty):
    queue = pd.DataFrame({"customer_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    untouched = queue.assign(label=empty)  # read back from CSV, an empty column is all NaN
    with pytest.raises(UserError) as error:
        validate_labels(
            untouched,
            queue=queue,
            classes=(False, True),
            id_column="customer_id",
            target="churned",
            test_ids=set(),
            known_ids=set(),
            raw_columns=pd.Series({"customer_id": "object", "x": "float64", "churned": "bool"}),
        )
    assert str(error.value) == (
        "labels file: has no label filled in (the label column is empty in all 3 rows). "
        "Fill the label column of the queue file, or pass the Label Studio JSON export."
    )


def reprotab(repo: Path, *args: str, check: bool = True):
    return sh([sys.executable, "-m", "reprotab", *args], repo, check=check)


@pytest.mark.integration
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

    # README step 1: the queue
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

    # README step 2: 30 of the 40 rows labeled
    labels = np.where(np.arange(len(queue)) % 3 == 0, "True", "False").astype(object)
    labels[30:] = None
    queue.assign(label=labels).to_csv(repo / "labeling/filled.csv", index=False)
    done = reprotab(repo, "labels", "import", "labeling/filled.csv")
    (batch,) = (repo / "data/batches").glob("*-labels.parquet")
    assert (repo / "data/batches" / f"{batch.name}.dvc").is_file()  # versioned like any batch
    assert batch.name in (repo / "data/batches/.gitignore").read_text()
    assert yaml.safe_load((repo / "params.yaml").read_text())["data"]["batches"]["combine"] == "all"

    # README step 3: exactly what the import printed, and the tree is clean after the commit
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
