"""New labeled batches versioned with DVC: prepare adds all of them or the last few, records
which files (with hashes) it used, and runs with an empty batches folder as shipped."""

from __future__ import annotations

import json

import pytest
import yaml

from reprotab.data.demo import generate
from tests.helpers import sh

pytestmark = pytest.mark.integration


def set_batches(repo, **batches) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["batches"].update(batches)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_prepare_uses_dvc_tracked_batches_and_records_them(reproduced):
    repo = reproduced  # 2,500 rows, reproduced with the batches folder as shipped (only .gitkeep)
    sh(["dvc", "repro", "prepare"], repo)
    summary = json.loads((repo / "reports/prepare/summary.json").read_text())
    assert summary["data"]["batches"] == [] and summary["data"]["rows"] == 2500

    for name, seed in (("2026-10.parquet", 31), ("2026-11.parquet", 32)):
        generate(rows=200, seed=seed, drift=0.3).to_parquet(repo / "data/batches" / name, index=False)
        sh(["dvc", "add", f"data/batches/{name}"], repo)
    set_batches(repo, combine="all")
    sh(["dvc", "repro", "prepare"], repo)
    summary = json.loads((repo / "reports/prepare/summary.json").read_text())
    assert [b["name"] for b in summary["data"]["batches"]] == ["2026-10.parquet", "2026-11.parquet"]
    assert summary["data"]["rows"] == 2900 and len(summary["data"]["batches"][0]["sha256"]) == 64

    set_batches(repo, combine="window", window=1)
    result = sh(["dvc", "repro", "prepare"], repo)
    assert "Running stage 'prepare'" in result.stdout
    summary = json.loads((repo / "reports/prepare/summary.json").read_text())
    assert [b["name"] for b in summary["data"]["batches"]] == ["2026-11.parquet"] and summary["data"]["rows"] == 2700
    assert "data.batches.combine" in sh(["dvc", "params", "diff"], repo).stdout
