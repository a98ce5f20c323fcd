"""Git and DVC plumbing of `reprotab retrain` (reprotab/retraining.py): refuse a dirty tree, run dvc
with its output in the log, commit a run's files, push to the DVC remote, and restore the tracked
files and outputs after a failed step."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from reprotab.errors import UserError, problem
from reprotab.registry_checks import git

OWN_OUTPUTS = ("reports/retrain/", "reports/monitor/")  # rewritten by every run, never "dirty"
log = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step after the batch was versioned failed: restore and report."""


def tool(name: str) -> str:
    """The environment's own dvc (next to this Python), else the one on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def check_clean(repo: Path) -> None:
    changed = [
        line[3:]
        for line in git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
        if line.strip() and not line[3:].startswith(OWN_OUTPUTS)
    ]
    if changed:
        raise UserError(
            problem(
                "retrain",
                "needs a clean git tree (each step commits; uncommitted edits would be mixed in)",
                ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""),
                "Commit or stash them first (`git status`)",
            )
        )


def dvc(repo: Path, *args: str, stream: bool = False) -> None:
    """Run dvc; with `stream` every output line goes to the log. A failure raises StepFailed."""
    command = [tool("dvc"), *args]
    log.info("$ %s", " ".join(["dvc", *args]))
    process = subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    for line in process.stdout:  # type: ignore[union-attr]
        output.append(line.rstrip())
        if stream:
            log.info("dvc: %s", line.rstrip())
    if process.wait() != 0:
        raise StepFailed(f"`dvc {' '.join(args)}` failed (exit {process.returncode}):\n" + "\n".join(output[-30:]))


def commit(repo: Path, message: str, paths: list[str]) -> dict[str, str] | None:
    """`git add -A` of `paths` (ignored files stay out) and a commit; None when nothing changed."""
    existing = [p for p in paths if (repo / p).exists() or git(repo, "ls-files", p, check=False)]
    git(repo, "add", "-A", "--", *existing)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=repo).returncode == 0:
        return None
    git(repo, "commit", "-q", "-m", message)
    sha = git(repo, "rev-parse", "HEAD")
    log.info("committed %s %s", sha[:8], message.splitlines()[0])
    return {"commit": sha, "message": message.splitlines()[0]}


def push(repo: Path) -> str:
    """`dvc push` when a remote is configured; a failure is a warning (push again later)."""
    remotes = subprocess.run([tool("dvc"), "remote", "list"], cwd=repo, capture_output=True, text=True).stdout
    if not remotes.strip():
        return "no DVC remote configured"
    try:
        dvc(repo, "push")
    except StepFailed as exc:
        log.warning("dvc push failed; the run is committed, push later with `dvc push`: %s", exc)
        return "failed (run `dvc push` later)"
    return "pushed"


def restore(repo: Path) -> None:
    """Undo this run's uncommitted edits of tracked files and put the outputs back to dvc.lock's."""
    changed = [
        line[3:]
        for line in git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
        if line.strip() and not line[3:].startswith(OWN_OUTPUTS)
    ]
    if changed:
        git(repo, "checkout", "HEAD", "--", *changed)
        log.warning("restored to HEAD: %s", ", ".join(changed))
    try:
        dvc(repo, "checkout", "--quiet")
    except StepFailed as exc:
        log.warning("dvc checkout could not restore every output: %s", exc)
