"""The steps `reprotab retrain` (reprotab/retrain/month.py) takes in its repository, and the check
before the first: refuse a dirty tree, run dvc as a step with its output in the log, commit a
run's files, push to the DVC remote; a step that fails raises StepFailed. Git and dvc themselves
run through reprotab/vcs.py; rolling a failed month back is reprotab/retrain/journal.py."""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from reprotab import paths, vcs
from reprotab.errors import UserError, problem

OWN_OUTPUTS = (f"{paths.RETRAIN_REPORTS}/", f"{paths.MONITOR_REPORTS}/")  # rewritten by every run, never "dirty"
log = logging.getLogger(__name__)


class StepFailed(Exception):
    """A step after the batch was versioned failed: restore and report."""


# Where a month writes and commits; an untracked file here would be committed by the month, and a
# rollback (`git reset --hard`) would then take it away again, so none may be there at the start.
WRITES = ("params.yaml", "dvc.lock", ".gitignore", "data", "models", "reports")
# ... and where a new file would make `registry register` refuse the month's commit at its end
RUN_PATHS = (*WRITES, "reprotab", "stages", "dvc.yaml")


def changed_paths(repo: Path) -> list[str]:
    """Tracked paths with uncommitted changes, and untracked (not ignored) files where a month
    writes, outside the reports every run rewrites."""
    changed = vcs.status_paths(cwd=repo, untracked=False)
    new = vcs.status_paths(*[p for p in RUN_PATHS if (repo / p).exists()], cwd=repo, untracked=True)
    return [path for path in dict.fromkeys([*changed, *new]) if not path.startswith(OWN_OUTPUTS)]


def changed_data(repo: Path) -> list[str]:
    """DVC-tracked files changed in the workspace since they were last added or reproduced
    (`dvc status`: "modified"): a rollback's `dvc checkout` would put the recorded version back."""
    result = vcs.run_dvc("status", "--json", cwd=repo)
    try:
        found = json.loads(result.stdout or "{}")
    except ValueError:
        return []
    modified = []
    for changes in found.values():
        for change in changes if isinstance(changes, list) else []:
            outs = change.get("changed outs", {}) if isinstance(change, dict) else {}
            modified += [path for path, state in outs.items() if state == "modified"]
    return sorted(set(modified))


def check_clean(repo: Path) -> None:
    """A month starts from a committed state: git (tracked changes, new files where it writes),
    DVC-tracked data, and a git identity to commit with."""
    changed = changed_paths(repo)
    if changed:
        raise UserError(
            problem(
                "retrain",
                "needs a clean git tree (each step commits; uncommitted edits or new files would be mixed in)",
                ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else ""),
                "Commit, stash or git-ignore them first (`git status`)",
            )
        )
    modified = changed_data(repo)
    if modified:
        raise UserError(
            problem(
                "retrain",
                "DVC-tracked files were changed since they were added or reproduced (a rolled-back month would "
                "restore the recorded version over them)",
                ", ".join(modified[:8]),
                "Record them first (`dvc add <file>` or `dvc commit`, then git commit)",
            )
        )
    if not vcs.git_succeeds("var", "GIT_COMMITTER_IDENT", cwd=repo):
        raise UserError(
            problem(
                "retrain",
                "commits every step, and git has no identity to commit with",
                None,
                'Set one: `git config user.name "..."` and `git config user.email "..."`',
            )
        )


def dvc(repo: Path, *args: str, stream: bool = False, started: Callable[[int], None] | None = None) -> None:
    """Run dvc; with `stream` every output line goes to the log. A failure raises StepFailed.
    dvc runs in its own process group, killed if this process dies, and `started` is told the
    group (the journal keeps it)."""
    log.info("$ %s", " ".join(["dvc", *args]))
    process = vcs.start_dvc(*args, cwd=repo)  # retrain runs no threads, as start_dvc needs
    if started is not None:
        started(process.pid)
    output = []
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            output.append(line.rstrip())
            if stream:
                log.info("dvc: %s", line.rstrip())
        process.wait()
    except BaseException:  # Ctrl-C, SIGTERM: stop dvc (its own group) before the rollback touches anything
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if process.returncode != 0:
        raise StepFailed(f"`dvc {' '.join(args)}` failed (exit {process.returncode}):\n" + "\n".join(output[-30:]))


def commit(
    repo: Path, message: str, files: list[str], *, made: Callable[[str], None] | None = None
) -> dict[str, str] | None:
    """`git add -A` of `paths` (ignored files stay out) and a commit; None when nothing changed.
    `made` is told the new commit (the journal keeps it). A git failure raises StepFailed."""
    try:
        existing = [p for p in files if (repo / p).exists() or vcs.git("ls-files", p, cwd=repo, check=False)]
        vcs.git("add", "-A", "--", *existing, cwd=repo)
        if vcs.git_succeeds("diff", "--cached", "--quiet", cwd=repo):
            return None
        vcs.git("commit", "-q", "-m", message, cwd=repo)
        sha = vcs.git("rev-parse", "HEAD", cwd=repo)
    except vcs.GitError as exc:
        raise StepFailed(str(exc)) from None
    if made is not None:
        made(sha)
    log.info("committed %s %s", sha[:8], message.splitlines()[0])
    return {"commit": sha, "message": message.splitlines()[0]}


def push(repo: Path) -> str:
    """`dvc push` when a remote is configured; a failure is a warning (push again later)."""
    remotes = vcs.run_dvc("remote", "list", cwd=repo).stdout
    if not remotes.strip():
        return "no DVC remote configured"
    try:
        dvc(repo, "push")
    except StepFailed as exc:
        log.warning("dvc push failed; the run is committed, push later with `dvc push`: %s", exc)
        return "failed (run `dvc push` later)"
    return "pushed"
