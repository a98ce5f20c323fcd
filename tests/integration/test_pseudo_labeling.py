"""Pseudo-labeling through `dvc exp run` in a reproduced copy of the project. Its parts:
tests/unit/train/test_pseudo_labeling.py."""

import json

import pytest

from reprotab.data.demo import generate
from tests.helpers import DVC, sh

pytestmark = pytest.mark.integration


def test_exp_run_with_pseudo_labeling(reproduced):
    repo = reproduced  # 2,500 rows: 1,500 in the train split
    unlabeled = generate(rows=2000, seed=21).drop(columns=["churned"])
    unlabeled["customer_id"] = "u-" + unlabeled["customer_id"].astype(str)
    unlabeled.to_parquet(repo / "unlabeled.parquet", index=False)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "unlabeled rows"], repo)
    sh(
        [DVC, "exp", "run", "-S", "train.pseudo_labeling.enabled=true", "-S", "data.unlabeled_path=unlabeled.parquet"],
        repo,
    )
    metrics = json.loads((repo / "reports/train/metrics.json").read_text())
    report = metrics["pseudo_labeling"]
    assert report["unlabeled_rows"] == 2000 and 0 < report["pseudo_rows"] <= 1500  # at most the real training rows
    assert report["rounds"]["round_1"]["pseudo_rows_total"] > 0
    assert json.loads((repo / "reports/evaluate/metrics.json").read_text())["test"]["roc_auc"] > 0.6
