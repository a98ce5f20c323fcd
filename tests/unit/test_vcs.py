"""reprotab/vcs.py on a small real git repository: how `git status` is read, the one grammar of
a git failure, and what a question about a missing revision or file answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reprotab import vcs
from tests.helpers import tool_env


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    for key, value in tool_env().items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    for name in ("params.yaml", "README.md", "data/old.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("a\n")
    vcs.git("add", "-A", cwd=tmp_path)
    vcs.git("commit", "-q", "-m", "start", cwd=tmp_path)
    return tmp_path


def test_status_paths_keep_the_first_letter_of_the_first_path(repo):
    """A stripped reading would turn ' M params.yaml' into 'arams.yaml'."""
    (repo / "params.yaml").write_text("b\n")
    (repo / "README.md").write_text("b\n")
    assert vcs.status_paths(cwd=repo, untracked=False) == ["README.md", "params.yaml"]


def test_status_paths_name_a_rename_by_its_new_path_and_new_files_only_when_asked(repo):
    vcs.git("mv", "data/old.csv", "data/new.csv", cwd=repo)
    (repo / "data/extra.csv").write_text("x\n")
    assert vcs.status_paths("data", cwd=repo, untracked=False) == ["data/new.csv"]
    assert sorted(vcs.status_paths("data", cwd=repo)) == ["data/extra.csv", "data/new.csv"]


def test_a_git_failure_says_the_command_and_gits_own_words(repo):
    with pytest.raises(vcs.GitError) as failed:
        vcs.git("rev-parse", "--verify", "nope", cwd=repo)
    assert str(failed.value).startswith("`git rev-parse --verify nope` failed: fatal:")
    assert vcs.git("rev-parse", "--verify", "nope", cwd=repo, check=False) == ""
    assert not vcs.git_succeeds("rev-parse", "--verify", "nope", cwd=repo)


def test_revisions_and_files_at_them(repo):
    head = vcs.git("rev-parse", "HEAD", cwd=repo)
    assert vcs.commit_of("main", cwd=repo) == head and vcs.commit_of("nope", cwd=repo) is None
    assert vcs.show_file(head, "params.yaml", cwd=repo) == "a\n"
    assert vcs.show_file(head, "missing.txt", cwd=repo) is None
    assert vcs.git_dir(repo) == repo / ".git"
    assert vcs.git_dir(repo / "data") == repo / ".git"
    assert vcs.git_dir(repo / "missing") is None


def test_outside_git_there_is_no_git_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert vcs.git_dir(tmp_path) is None


def test_dvc_is_the_environments_own():
    beside = Path(sys.executable).parent / "dvc"
    assert vcs.dvc_executable() == str(beside)
