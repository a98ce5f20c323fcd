"""The retrain transaction's parts on small real git repositories (no pipeline run): what a
month refuses to start from, what a rollback removes and what it must keep, and when
`--recover` refuses to run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reprotab.errors import UserError
from reprotab.retrain.journal import Transaction, check_recoverable, refuse_if_interrupted, rollback, tags
from reprotab.retrain.month import prod_version
from reprotab.retrain.steps import WRITES, check_clean
from tests.helpers import tool_env

pytestmark = pytest.mark.integration


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, env=env or tool_env(), check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    for key, value in tool_env().items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    git(tmp_path, "init", "-q", "-b", "main")
    for name in ("params.yaml", "README.md", "data/batches/.gitkeep", "reports/retrain/old.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "start")
    return tmp_path


def test_a_month_refuses_new_files_where_it_writes_but_not_its_own_reports(repo):
    (repo / "reports/retrain/2026-11.md").write_text("an earlier month's summary, rewritten by every run\n")
    check_clean(repo)
    (repo / "data/batches/notes.txt").write_text("mine\n")
    with pytest.raises(UserError, match=r"uncommitted edits or new files .* Got 'data/batches/notes.txt'"):
        check_clean(repo)


def test_a_month_refuses_to_start_without_a_git_identity(repo, monkeypatch, tmp_path_factory):
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))  # no ~/.gitconfig
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    with pytest.raises(UserError, match=r"git has no identity to commit with.*git config user.name"):
        check_clean(repo)


def test_only_one_month_runs_at_a_time(repo):
    first, second = Transaction(repo), Transaction(repo)
    first.lock()
    try:
        with pytest.raises(UserError, match="another retrain is running in this repository"):
            second.lock()
    finally:
        first.unlock()
    second.lock()
    second.unlock()


def test_outside_git_a_month_is_one_message(tmp_path):
    with pytest.raises(UserError, match=r"retrain: needs a git repository"):
        Transaction(tmp_path / "nowhere")


def interrupted_month(repo: Path) -> Transaction:
    """A month that committed, tagged and wrote files, then died (its journal left behind)."""
    git(repo, "tag", "main")  # a tag named like the branch: short names are ambiguous
    tx = Transaction(repo)
    tx.begin("2026-11", "2026-12-01T00:00:00+00:00")
    batch = repo / "data/batches/2026-11.parquet"
    tx.will_create(batch)
    batch.write_text("rows\n")
    (repo / "data/batches/.2026-11.parquet.abc123.tmp").write_text("half a copy\n")
    (repo / "params.yaml").write_text("combine: all\n")
    git(repo, "add", "params.yaml")
    git(repo, "commit", "-q", "-m", "Add batch 2026-11")
    tx.committed(git(repo, "rev-parse", "HEAD"))
    git(repo, "tag", "-a", "model@v1.0.1", "-m", "registered")
    (repo / "params.yaml").write_text("half-edited\n")  # the kill came mid-edit
    return tx


def test_rollback_restores_git_and_removes_what_the_run_made_and_nothing_else(repo):
    start, before = git(repo, "rev-parse", "HEAD"), None
    tx = interrupted_month(repo)
    before = {ref: sha for ref, sha in tags(repo).items() if ref != "refs/tags/model@v1.0.1"}
    git(repo, "tag", "release-notes")  # a tag of the user's, made while the journal was open
    done = rollback(repo, tx.journal, dvc_checkout=lambda: None)
    assert git(repo, "rev-parse", "HEAD") == start and (repo / "params.yaml").read_text() == "a\n"
    assert set(tags(repo)) == {*before, "refs/tags/release-notes"}  # only the registry's new tag went
    assert not (repo / "data/batches/2026-11.parquet").exists()
    assert not list((repo / "data/batches").glob(".*.tmp"))
    assert "deleted tag model@v1.0.1" in done and f"git reset to {start[:8]}" in done
    assert git(repo, "status", "--porcelain") == ""


def test_a_commit_the_kill_kept_out_of_the_journal_is_still_the_runs(repo):
    """SIGKILL between `git commit` and the journal's note of it: the commit's trailer says whose it is."""
    tx = interrupted_month(repo)
    git(repo, "checkout", "-q", "--", "params.yaml")
    (repo / "reports/retrain/2026-11.md").write_text("summary\n")
    git(repo, "add", "reports")
    git(repo, "commit", "-q", "-m", tx.sign("Retrain 2026-11: registered v1.0.1"))  # never noted in the journal
    check_recoverable(repo, tx.journal, run_paths=WRITES)
    git(repo, "commit", "-q", "--allow-empty", "-m", "Retrain 2026-11: looks like the run's, is not")
    with pytest.raises(UserError, match=r"commits were made after the interrupted run"):
        check_recoverable(repo, tx.journal, run_paths=WRITES)


def test_recover_refuses_to_drop_work_done_after_the_crash(repo):
    tx = interrupted_month(repo)
    git(repo, "checkout", "-q", "--", "params.yaml")
    (repo / "README.md").write_text("my own edit\n")
    with pytest.raises(UserError, match=r"files the run never writes have uncommitted changes.*README.md"):
        check_recoverable(repo, tx.journal, run_paths=WRITES)
    git(repo, "commit", "-q", "-am", "my own commit")
    with pytest.raises(UserError, match=r"commits were made after the interrupted run"):
        check_recoverable(repo, tx.journal, run_paths=WRITES)


def test_registry_and_batch_commands_wait_for_the_recovery(repo):
    refuse_if_interrupted(repo, "registry promote")  # nothing interrupted
    Transaction(repo).begin("2026-11", "2026-12-01T00:00:00+00:00")
    with pytest.raises(UserError, match=r"registry promote: an interrupted .* Run `reprotab retrain --recover` first"):
        refuse_if_interrupted(repo, "registry promote")


def test_no_prod_version_before_the_first_promotion(repo):
    """`registry show` lists every stage, holding a version or not; the loop must not read that as prod."""
    assert prod_version(repo) is None
