"""Git and DVC plumbing of `reprotab retrain` (reprotab/retraining.py): refuse a dirty tree, run dvc
with its output in the log, commit a run's files, push to the DVC remote. Rolling a failed month
back is reprotab/retrain_journal.py."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
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


def changed_paths(repo: Path) -> list[str]:
    """Tracked paths with uncommitted changes, outside the files every run rewrites. Read with -z:
    the porcelain lines start with a status column that a stripped text output loses."""
    output = subprocess.run(
        ["git", "status", "--porcelain", "-z", "--untracked-files=no"], cwd=repo, capture_output=True, check=True
    ).stdout.decode()
    entries, paths = output.split("\0"), []
    while entries:
        entry = entries.pop(0)
        if len(entry) < 4:
            continue
        if entry[0] in "RC":  # a rename or copy: the next entry is the source path
            entries.pop(0)
        if not entry[3:].startswith(OWN_OUTPUTS):
            paths.append(entry[3:])
    return paths


def check_clean(repo: Path) -> None:
    changed = changed_paths(repo)
    if changed:
        raise UserError(
            problem(
                "retrain",
                "needs a clean git tree (each step commits; uncommitted edits would be mixed in)",
                ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""),
                "Commit or stash them first (`git status`)",
            )
        )


def _die_with_parent() -> None:
    """In the dvc child: get SIGKILL when the retrain process dies (Linux), so a killed month
    leaves no `dvc repro` running on its own."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def dvc(repo: Path, *args: str, stream: bool = False, started: Callable[[int], None] | None = None) -> None:
    """Run dvc; with `stream` every output line goes to the log. A failure raises StepFailed.
    dvc runs in its own process group, which `started` is told (the journal keeps it)."""
    command = [tool("dvc"), *args]
    log.info("$ %s", " ".join(["dvc", *args]))
    process = subprocess.Popen(
        command,
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # retrain runs no threads, so a preexec_fn is safe
    )
    if started is not None:
        started(process.pid)
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
