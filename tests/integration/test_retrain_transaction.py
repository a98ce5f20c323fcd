"""A month of `reprotab retrain` is a transaction, in a real git + DVC repository: bad labels are
refused before anything is versioned, a name clash is refused before anything is written, and a
run killed in the middle of `dvc repro` is rolled back by `reprotab retrain --recover` to exactly
the commit, tags, champion and outputs it started from. Batches are listed, retired and restored."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from reprotab.data.demo import generate
from tests.helpers import promoted_repo, sh, tool_env
from tests.integration.test_retraining import small_and_on_log_loss, subjects, tags

pytestmark = pytest.mark.integration
DVC = str(Path(sys.executable).parent / "dvc")


def retrain(repo: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "reprotab", "retrain", *args], repo, check=check)


def state(repo: Path) -> dict:
    """What a failed or killed month must leave as it found it."""
    return {
        "head": sh(["git", "rev-parse", "HEAD"], repo).stdout.strip(),
        "tags": tags(repo),
        "champion": (repo / "models/champion.json").read_text(),
        "model": (repo / "models/model.zip").read_bytes(),
        "batches": sorted(p.name for p in (repo / "data/batches").iterdir()),
        "params": (repo / "params.yaml").read_text(),
    }


def clean(repo: Path) -> bool:
    return sh(["git", "status", "--porcelain"], repo).stdout == ""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Month 1: trained, v1.0.0 registered and in prod (with its frozen reference set pinned)."""
    return promoted_repo(tmp_path_factory.mktemp("transaction"), rows=1500, params=small_and_on_log_loss)


def write_batch(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_the_champion_pins_a_frozen_reference_set(project):
    pin = json.loads((project / "models/champion.json").read_text())
    assert pin["reference"]["path"] == "data/prepared/test.parquet" and pin["reference"]["rows"] == 300
    decision = json.loads((project / "reports/gate/decision.json").read_text())
    assert decision["champion"]["version"] is None  # month 1's gate ran before any champion


def test_a_batch_whose_target_was_renamed_is_refused_and_recorded(project, tmp_path):
    """Used to crash in its own recovery (a stripped `git status` line lost its first letter)."""
    before = state(project)
    renamed = generate(rows=600, seed=11, drift=1.0).rename(columns={"churned": "churn"})
    result = retrain(project, "--batch", str(write_batch(tmp_path, "2026-05", renamed)), "--force")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "lacks the target column 'churned'" in result.stderr and "Did you mean 'churn'?" in result.stderr
    assert subjects(project)[0].startswith("Retrain 2026-05: refused")
    assert {**state(project), "head": before["head"]} == before  # only the record commit on top
    assert sh(["git", "rev-parse", "HEAD~1"], project).stdout.strip() == before["head"]
    assert clean(project)
    summary = json.loads((project / "reports/retrain/2026-05.json").read_text())
    assert summary["outcome"] == "refused" and "lacks the target column" in summary["why"]


def test_a_batch_without_any_label_is_refused(project, tmp_path):
    unlabelled = generate(rows=300, seed=12).assign(churned=None)
    result = retrain(project, "--batch", str(write_batch(tmp_path, "2026-06", unlabelled)), "--force")
    assert result.returncode == 2 and "has no label: every value of the target 'churned' is missing" in result.stderr
    assert not (project / "data/batches/2026-06.parquet").exists() and clean(project)


def test_labels_of_one_class_are_stopped_by_the_monitor_and_never_versioned(project, tmp_path):
    """A broken upstream join: every label True. The monitor's label-drift blocker stops the month."""
    before = state(project)
    poisoned = pd.read_parquet(project / "data/raw/churn.parquet").head(1000).assign(churned=True)
    result = retrain(project, "--batch", str(write_batch(tmp_path, "2026-07", poisoned)), "--promote")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused: the monitor stopped the loop" in result.stderr and "--override" in result.stderr
    after = state(project)
    assert after["tags"] == before["tags"] and after["champion"] == before["champion"]
    assert after["batches"] == before["batches"] and clean(project)
    summary = json.loads((project / "reports/retrain/2026-07.json").read_text())
    assert summary["monitor"]["blockers"] and summary["monitor"]["model"]["version"] == "v1.0.0"


def test_a_name_taken_by_other_rows_is_refused_before_anything_is_written(project, tmp_path):
    first = write_batch(tmp_path, "2026-08", generate(rows=600, seed=13, drift=1.0))
    done = retrain(project, "--batch", str(first), "--force")
    assert done.returncode == 0, done.stderr
    before, report = state(project), (project / "reports/monitor/2026-08/drift.json").read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    result = retrain(project, "--batch", str(write_batch(other, "2026-08", generate(rows=600, seed=14))), "--force")
    assert result.returncode == 2 and "a different batch is already versioned" in result.stderr
    assert state(project) == before and clean(project)
    assert (project / "reports/monitor/2026-08/drift.json").read_bytes() == report  # that month's record untouched


def test_batches_list_retire_and_restore(project):
    def batches(*args: str) -> subprocess.CompletedProcess:
        return sh([sys.executable, "-m", "reprotab", "batches", *args], project, check=False)

    listed = json.loads(batches("list", "--json").stdout)
    assert [(b["name"], b["status"]) for b in listed] == [("2026-08", "active")]
    assert listed[0]["rows"] == 600 and listed[0]["labelled"] == 600
    wrong = batches("retire", "2026-8", "--reason", "broken join")
    assert wrong.returncode == 2 and "Did you mean '2026-08'?" in wrong.stderr
    assert batches("retire", "2026-08", "--reason", "labels from a broken join").returncode == 0
    assert not (project / "data/batches/2026-08.parquet").exists()
    listed = json.loads(batches("list", "--json").stdout)
    assert listed == [{**listed[0], "name": "2026-08", "status": "retired", "reason": "labels from a broken join"}]
    assert subjects(project)[0] == "Retire batch 2026-08" and clean(project)
    assert batches("restore", "2026-08", "--reason", "fixed upstream").returncode == 0
    assert (project / "data/batches/2026-08.parquet").is_file() and clean(project)
    log = json.loads((project / "data/retired/log.json").read_text())
    assert [e["action"] for e in log] == ["retire", "restore"]


@pytest.mark.parametrize("whole_group", [True, False], ids=["machine-crash", "parent-only"])
def test_a_run_killed_during_dvc_repro_is_rolled_back_by_recover(project, tmp_path, whole_group):
    """SIGKILL in the middle of `dvc repro` (the whole process group, or the retrain process alone,
    whose dvc child then dies with it): the next run refuses, `--recover` puts everything back."""
    before, outputs = state(project), sh([DVC, "status", "--json"], project).stdout
    name = f"2026-1{int(whole_group)}"
    path = write_batch(tmp_path, name, generate(rows=600, seed=20 + whole_group, drift=1.0))
    process = subprocess.Popen(
        [sys.executable, "-m", "reprotab", "retrain", "--batch", str(path), "--force", "--promote"],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    journal = project / ".git/reprotab-retrain.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.is_file() and json.loads(journal.read_text()).get("dvc_pgid"):
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the run never reached dvc repro")
    time.sleep(0.5)  # dvc repro is running (its stages take seconds; a longer wait can outlast them on a busy machine)
    if whole_group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.send_signal(signal.SIGKILL)
    process.wait()
    assert subjects(project)[0] == f"Add batch {name}"  # half a month is in git now

    refused = retrain(project, "--batch", str(path))
    assert refused.returncode == 2 and "reprotab retrain --recover" in refused.stderr
    recovered = retrain(project, "--recover")
    assert recovered.returncode == 0, recovered.stderr
    assert subjects(project)[0] == f"Retrain {name}: interrupted at dvc repro, rolled back"
    assert sh(["git", "rev-parse", "HEAD~1"], project).stdout.strip() == before["head"]
    assert {**state(project), "head": before["head"]} == before and clean(project)
    assert sh([DVC, "status", "--json"], project).stdout == outputs  # the outputs are back as well
    assert "nothing to recover" in retrain(project, "--recover").stdout


def test_ctrl_c_during_dvc_repro_rolls_back_on_the_spot(project, tmp_path):
    """SIGINT (Ctrl-C) or SIGTERM: the run itself rolls back, records the month and exits; no --recover needed."""
    before, outputs = state(project), sh([DVC, "status", "--json"], project).stdout
    path = write_batch(tmp_path, "2026-12", generate(rows=600, seed=30, drift=1.0))
    process = subprocess.Popen(
        [sys.executable, "-m", "reprotab", "retrain", "--batch", str(path), "--force"],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default action, whatever this test run inherited: a shell starts a background job
        # (`.ci/run &`) with SIGINT ignored, and the run would then finish the month untouched
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),
    )
    journal = project / ".git/reprotab-retrain.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (journal.is_file() and json.loads(journal.read_text()).get("dvc_pgid")):
        time.sleep(0.2)
    time.sleep(0.5)  # dvc repro is running (its stages take seconds; a longer wait can outlast them on a busy machine)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err, err
    assert not journal.exists()
    assert subjects(project)[0] == "Retrain 2026-12: failed at dvc repro, rolled back"
    assert {**state(project), "head": before["head"]} == before and clean(project)
    assert sh([DVC, "status", "--json"], project).stdout == outputs
