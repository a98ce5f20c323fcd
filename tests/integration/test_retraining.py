"""The retraining loop for real: a temporary git + DVC repository, three months and a broken one.

Month 1 trains, registers v1.0.0 and promotes it. Month 2 brings a batch without drift: the monitor
sees no reason, nothing is added or trained. Month 3 brings strong drift (the churn rate moves from
about 7 % to 38 %): retrain, gate, register v1.0.1 and promote it. The gate judges log loss here,
with roc_auc allowed to drop by at most 0.01, as in the walkthrough of docs/operations/retraining.md:
after such a shift the old model still ranks customers about as well, but its probabilities are far
off. Re-running month 3 adds nothing twice, and a broken params edit that makes `dvc repro` fail
leaves the champion alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from reprotab.data.demo import generate
from reprotab.registry import versions as registry
from tests.helpers import promoted_repo, sh

pytestmark = pytest.mark.integration
DVC = str(Path(sys.executable).parent / "dvc")


def retrain(repo: Path, batch: Path, *args: str, check: bool = True):
    return sh([sys.executable, "-m", "reprotab", "retrain", "--batch", str(batch), *args], repo, check=check)


def tags(repo: Path) -> set[str]:
    return set(sh(["git", "tag"], repo).stdout.split())


def subjects(repo: Path) -> list[str]:
    return sh(["git", "log", "--format=%s"], repo).stdout.splitlines()


def edit_params(repo: Path, change) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    change(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def small_and_on_log_loss(params: dict) -> None:
    params["model"] = "lightgbm"  # small and fast, and the broken edit below breaks its settings
    params["hyperparameters"]["lightgbm"].update(n_estimators=60, n_jobs=1)
    params["gate"].update(metric="log_loss", guards={"roc_auc": 0.01}, bootstrap={"samples": 200, "confidence": 0.95})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Month 1: trained, v1.0.0 registered and in prod."""
    return promoted_repo(tmp_path_factory.mktemp("loop"), rows=1500, params=small_and_on_log_loss)


def batch(tmp_path: Path, name: str, *, seed: int, drift: float) -> Path:
    path = tmp_path / f"{name}.parquet"  # outside the project, as a file handed over would be
    generate(rows=1500, seed=seed, drift=drift).to_parquet(path, index=False)
    return path


def test_three_months_rerun_and_a_failed_run(project, tmp_path):
    repo = project
    before = tags(repo)
    assert before == {"model@v1.0.0", "model#prod#1"}

    # month 2: no drift, no retrain; the monitor's verdict is the month's record
    result = retrain(repo, batch(tmp_path, "2026-02", seed=7, drift=0.0))
    assert "no retrain" in result.stdout
    assert subjects(repo)[0] == "Monitor batch 2026-02: no retrain"
    assert not (repo / "data/batches/2026-02.parquet").exists() and tags(repo) == before
    quiet = json.loads((repo / "reports/retrain/2026-02.json").read_text())
    assert quiet["monitor"]["retrain"] is False and "gate" not in quiet

    # month 3: strong drift → retrain → gate passes → v1.0.1 registered and promoted
    march = batch(tmp_path, "2026-03", seed=8, drift=1.0)
    result = retrain(repo, march, "--promote")
    summary = json.loads((repo / "reports/retrain/2026-03.json").read_text())
    assert summary["monitor"]["retrain"] is True and summary["batch_added"] == "add"
    assert summary["params_changes"] == ["data.batches.combine: all"]  # refit: init_model stays null
    assert [b["name"] for b in summary["trained_on"]["batches"]] == ["2026-03.parquet"]
    decision = json.loads((repo / "reports/gate/decision.json").read_text())
    assert decision["promote"] is True, decision["reason"]
    assert summary["outcome"] == "promoted" and "registry: registered v1.0.1, promoted to prod" in result.stdout
    assert tags(repo) == before | {"model@v1.0.1", "model#prod#2"}
    assert registry.champion(repo).version == "v1.0.1"
    assert registry.show(repo)["stages"]["prod"]["version"] == "v1.0.1"
    assert subjects(repo)[:3] == [
        "Retrain 2026-03: registered v1.0.1, promoted to prod",
        "Retrain on batch 2026-03: gate passed",
        "Add batch 2026-03",
    ]
    assert sh(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == ""
    assert "data/batches/2026-03.parquet" in sh(["git", "show", "--stat", "HEAD~2"], repo).stdout

    # the same batch again (forced past the monitor): not added twice; the champion's own model is no challenger
    after_march = tags(repo)
    result = retrain(repo, march, "--force", "--promote")
    again = json.loads((repo / "reports/retrain/2026-03.json").read_text())
    assert again["batch_added"] == "already added"
    assert sorted(p.name for p in (repo / "data/batches").glob("*.parquet")) == ["2026-03.parquet"]
    assert subjects(repo).count("Add batch 2026-03") == 1
    assert tags(repo) == after_march and registry.champion(repo).version == "v1.0.1"

    # a broken params edit, committed: dvc repro fails, the champion and the prod tag stay
    edit_params(repo, lambda p: p["hyperparameters"]["lightgbm"].update(num_leaves=1))
    sh(["git", "commit", "-q", "-am", "a broken edit"], repo)
    champion_file = (repo / "models/champion.json").read_text()
    result = retrain(repo, batch(tmp_path, "2026-04", seed=9, drift=1.0), "--force", "--promote", check=False)
    assert result.returncode == 2
    assert "retrain: stopped: `dvc repro` failed" in result.stderr
    assert (repo / "models/champion.json").read_text() == champion_file
    assert tags(repo) == after_march and registry.show(repo)["stages"]["prod"]["version"] == "v1.0.1"
    # a month is a transaction: everything is rolled back, and the summary alone is committed as its record
    assert subjects(repo)[:2] == ["Retrain 2026-04: failed at dvc repro, rolled back", "a broken edit"]
    recorded = sh(["git", "show", "--name-only", "--format=", "HEAD"], repo).stdout.split()
    assert {"reports/retrain/2026-04.json", "reports/retrain/2026-04.md", "reports/monitor/2026-04/drift.json"} <= set(
        recorded
    )
    assert all(path.startswith(("reports/retrain/2026-04.", "reports/monitor/2026-04/")) for path in recorded)
    assert (
        not (repo / "data/batches/2026-04.parquet.dvc").exists()
        and not (repo / "data/batches/2026-04.parquet").exists()
    )
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""
    failed = json.loads((repo / "reports/retrain/2026-04.json").read_text())
    assert failed["outcome"] == "failed" and "num_leaves" in failed["error"]
    assert "deleted" not in " ".join(failed["rollback"]) and any("git reset" in d for d in failed["rollback"])
