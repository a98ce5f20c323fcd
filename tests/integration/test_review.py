"""`reprotab review` as a real process on a git + DVC history (two commits that differ in one param,
and a workspace that differs again). Its pure parts: tests/unit/tracking/test_review.py."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reprotab.tracking.review import (
    COMMENT_MARKER,
)
from tests.helpers import DVC, ROOT, reproduced_repo, sh, tool_env

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# with DVC's bare Infinity threshold, a confusion matrix faceted by revision with its "show values"
# checkbox, a two-file calibration plot, a bar chart without a title, and an image plot.


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def review(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "reprotab", "review", *args], cwd, check=check)


@pytest.mark.parametrize(
    ("make_dvc_folder", "message"),
    [
        (False, "review: must run inside a DVC repository. Got '{cwd}'."),
        (True, "review: needs a git repository to compare revisions. Got '{cwd}'."),
    ],
)
def test_outside_a_git_and_dvc_repository_is_a_user_error(tmp_path, make_dvc_folder, message):
    if make_dvc_folder:
        (tmp_path / ".dvc").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "reprotab", "review", "--base", "HEAD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=tool_env({"PYTHONPATH": str(ROOT), "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}),
    )
    assert result.returncode == 2
    assert message.format(cwd=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def set_sampler(repo: Path, sampler: str) -> None:
    """A top-level key that re-runs only train and evaluate and changes every test metric."""
    params = repo / "params.yaml"
    params.write_text(re.sub(r"(?m)^sampler: \w+", f"sampler: {sampler}", params.read_text()))
    assert yaml.safe_load(params.read_text())["sampler"] == sampler


def commit(repo: Path, message: str) -> str:
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", message], repo)
    return sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The reproduced project (no class balancing), then a second reproduced commit with random
    undersampling: two commits whose every test metric differs."""
    repo = reproduced_repo(tmp_path_factory, "review")
    assert yaml.safe_load((repo / "params.yaml").read_text())["sampler"] == "none"
    first = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    set_sampler(repo, "random_under")
    sh([DVC, "repro"], repo)
    second = commit(repo, "undersampled")
    return repo, first, second


def table_row(report: str, name: str) -> list[str]:
    """The cells of the diff-table row whose second column (Metric or Param) is `name`."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in report.splitlines()]
    return next(cells for cells in rows if len(cells) > 1 and cells[1] == name)


def stored_metrics(repo: Path, rev: str) -> dict:
    return json.loads(sh(["git", "show", f"{rev}:reports/evaluate/metrics.json"], repo).stdout)


def assert_report(repo: Path, *, base: str, head: str, old: dict, new: dict, samplers: tuple[str, str]) -> None:
    out = repo / "reports/review"
    report = (out / "report.md").read_text()
    assert report.startswith(f"## Experiment review: `{base}` → `{head}`")
    _, _, shown_old, shown_new, change = table_row(report, "test.roc_auc")
    assert old["test"]["roc_auc"] != new["test"]["roc_auc"]
    assert float(shown_old) == pytest.approx(old["test"]["roc_auc"], abs=1e-5)
    assert float(shown_new) == pytest.approx(new["test"]["roc_auc"], abs=1e-5)
    assert float(change) == pytest.approx(new["test"]["roc_auc"] - old["test"]["roc_auc"], abs=2e-5)
    assert table_row(report, "sampler")[1:] == ["sampler", *samplers]
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    for key_plot in ("roc", "precision_recall", "confusion_matrix"):
        assert f"{key_plot}.png" in images
    for name in images:
        width, height = png_size(out / name)
        assert width >= 300 and height >= 300, name
    assert "### Notes" not in report


def test_review_between_two_commits(history):
    repo, first, second = history
    review(repo, "--base", first, "--head", second)
    old, new = (stored_metrics(repo, rev) for rev in (first, second))
    assert_report(repo, base=first, head=second, old=old, new=new, samplers=("none", "random_under"))


def test_review_between_a_commit_and_the_workspace(history):
    """The workspace goes back to the first commit's results, uncommitted (tracked files from git,
    outputs from the DVC cache), and is reviewed against the last commit."""
    repo, first, second = history
    sh(["git", "checkout", first, "--", "."], repo)
    sh([DVC, "checkout"], repo)
    review(repo, "--base", second, "--artifact-url", "https://ci.example/runs/1")
    workspace = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert workspace == stored_metrics(repo, first)
    assert_report(
        repo,
        base=second,
        head="workspace",
        old=stored_metrics(repo, second),
        new=workspace,
        samplers=("random_under", "none"),
    )
    comment = (repo / "reports/review/comment.md").read_text()
    assert comment.splitlines()[0] == COMMENT_MARKER  # the workflow finds its own comment by it
    assert "(https://ci.example/runs/1)" in comment and "![" not in comment


def test_unknown_revision_is_a_user_error(history):
    repo, _, _ = history
    result = review(repo, "--base", "no-such-branch", check=False)
    assert result.returncode == 2
    assert "--base: is not a git revision of this repository. Got 'no-such-branch'." in result.stderr
    assert "Traceback" not in result.stderr
