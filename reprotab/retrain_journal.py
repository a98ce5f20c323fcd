"""A month of `reprotab retrain` as a transaction: it completes, or the repository is put back
exactly as it was (git branch and tree, tags, DVC workspace, models/champion.json), even after
the process was killed.

Before its first write a run takes an exclusive lock (`.git/reprotab-retrain.lock`, released by
the kernel when the process dies, so a second run at the same time is refused) and writes a
journal (`.git/reprotab-retrain.json`): the commit HEAD was at, every tag and its target, and each
path the run is about to create. The journal is removed when the month ends, committed or rolled
back. A journal found by a later run means one was interrupted: `reprotab retrain --recover`
rolls it back (`rollback` below) and commits that month's summary saying so; every other retrain
refuses until then.

Rolling back: stop what is left of the interrupted run's `dvc` process group, drop a stale
`.git/index.lock`, `git reset --hard` to the journal's commit, delete tags the run created (and
put back any it moved), remove the files it created that git does not track, `dvc checkout
--force` so every output matches dvc.lock again. Nothing here touches files the run did not write.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from reprotab.data import atomic_path
from reprotab.errors import UserError, problem
from reprotab.registry_checks import git

log = logging.getLogger(__name__)


def git_dir(repo: Path) -> Path:
    found = Path(git(repo, "rev-parse", "--git-dir"))
    return found if found.is_absolute() else repo / found


def tags(repo: Path) -> dict[str, str]:
    """Every tag and the object it points at (an annotated tag's own object)."""
    listed = git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/tags", check=False)
    return dict(line.split(" ", 1) for line in listed.splitlines() if line.strip())


@dataclass
class Journal:
    """What a rollback needs; saved before each step that writes."""

    batch: str
    head: str
    branch: str
    tags: dict[str, str]
    pid: int
    started: str
    step: str = "started"
    created: list[str] = field(default_factory=list)
    dvc_pgid: int | None = None


class Transaction:
    """The lock and the journal of one run (see the module docstring)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        folder = git_dir(repo)
        self.path = folder / "reprotab-retrain.json"
        self._lock_path = folder / "reprotab-retrain.lock"
        self._lock: IO[str] | None = None
        self.journal: Journal | None = None

    def lock(self) -> None:
        """The exclusive lock, or a UserError when another retrain holds it."""
        handle = self._lock_path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(
                problem("retrain", "another retrain is running in this repository", None, "Wait for it to end")
            ) from None
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def interrupted(self) -> Journal | None:
        """The journal an interrupted run left, if any (call with the lock held)."""
        if not self.path.is_file():
            return None
        try:
            return Journal(**json.loads(self.path.read_text()))
        except (ValueError, TypeError) as exc:
            raise UserError(
                problem(str(self.path), "is not a retrain journal this version can read", str(exc)[:80])
            ) from None

    def begin(self, batch: str, started: str) -> Journal:
        branch = git(self.repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
        head = git(self.repo, "rev-parse", "HEAD")
        self.journal = Journal(
            batch=batch, head=head, branch=branch, tags=tags(self.repo), pid=os.getpid(), started=started
        )
        self.save()
        return self.journal

    def save(self) -> None:
        assert self.journal is not None
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(asdict(self.journal), indent=1))

    def step(self, name: str) -> None:
        """Record the step about to run (the summary of an interrupted run names it)."""
        if self.journal is not None:
            self.journal.step = name
            self.save()
            log.info("step: %s", name)

    def will_create(self, path: Path) -> None:
        """Record a path before creating it, so a rollback can remove it."""
        if self.journal is not None:
            relative = str(path.resolve().relative_to(self.repo.resolve()))
            if relative not in self.journal.created:
                self.journal.created.append(relative)
                self.save()

    def running_dvc(self, pgid: int | None) -> None:
        if self.journal is not None:
            self.journal.dvc_pgid = pgid
            self.save()

    def end(self) -> None:
        """The month is over (committed or rolled back): forget the journal."""
        self.path.unlink(missing_ok=True)
        self.journal = None


def stop_group(pgid: int | None, repo: Path) -> None:
    """Kill what is left of an interrupted run's dvc process group (its processes work in `repo`)."""
    if not pgid:
        return
    import psutil

    for process in psutil.process_iter(["pid", "cwd"]):
        try:
            if os.getpgid(process.info["pid"]) == pgid and Path(process.info["cwd"] or "/") == repo.resolve():
                process.send_signal(signal.SIGKILL)
                log.warning("stopped process %d left by the interrupted run", process.info["pid"])
        except (ProcessLookupError, psutil.Error, OSError):
            continue


def rollback(repo: Path, journal: Journal, *, dvc_checkout: Any) -> list[str]:
    """Put git, the tags, the created files and the DVC workspace back as `journal` found them;
    returns what was done, for the month's summary."""
    done: list[str] = []
    stop_group(journal.dvc_pgid, repo)
    index_lock = git_dir(repo) / "index.lock"
    if index_lock.exists():
        index_lock.unlink()
        done.append("removed a stale .git/index.lock")
    if journal.branch and git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False) != journal.branch:
        git(repo, "checkout", "-q", "-f", journal.branch)
    if git(repo, "rev-parse", "HEAD") != journal.head:
        done.append(f"git reset to {journal.head[:8]}")
    git(repo, "reset", "-q", "--hard", journal.head)
    for tag, target in tags(repo).items():
        if tag not in journal.tags:
            git(repo, "tag", "-d", tag)
            done.append(f"deleted tag {tag}")
        elif target != journal.tags[tag]:
            git(repo, "update-ref", f"refs/tags/{tag}", journal.tags[tag])
            done.append(f"restored tag {tag}")
    for relative in journal.created:
        path = repo / relative
        if path.is_file() and not git(repo, "ls-files", "--", relative, check=False):
            path.unlink()
            done.append(f"removed {relative}")
    dvc_checkout()
    log.warning("rolled back: %s", "; ".join(done) or "nothing had changed")
    return done
