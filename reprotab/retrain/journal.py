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
import shutil
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from reprotab import vcs
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem

JOURNAL = "reprotab-retrain.json"
TRAILER = "Retrain-Run"
REGISTRY_TAGS = ("refs/tags/model@", "refs/tags/model#")  # what `reprotab registry` writes (GTO)
log = logging.getLogger(__name__)


def git_dir(repo: Path) -> Path:
    """Where the lock and the journal live; a UserError outside git."""
    found = vcs.git_dir(repo)
    if found is None:
        raise UserError(problem("retrain", "needs a git repository (every step commits)", str(repo), "Run `git init`"))
    return found


def tags(repo: Path) -> dict[str, str]:
    """Every tag's full ref (`refs/tags/...`: a short name can be ambiguous with a branch) and the
    object it points at (an annotated tag's own object)."""
    listed = vcs.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/tags", cwd=repo, check=False)
    return dict(line.split(" ", 1) for line in listed.splitlines() if line.strip())


def refuse_if_interrupted(repo: Path, command: str) -> None:
    """Commands that write commits or tags refuse while a month waits to be rolled back, so that
    `--recover` never has to tell their work from the interrupted run's."""
    try:
        journal = git_dir(repo) / JOURNAL
    except UserError:
        return
    if journal.is_file():
        raise UserError(
            problem(
                command,
                "an interrupted `reprotab retrain` has not been rolled back yet",
                None,
                "Run `reprotab retrain --recover` first",
            )
        )


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
    commits: list[str] = field(default_factory=list)
    dvc_pgid: int | None = None

    @property
    def trailer(self) -> str:
        """The line every commit of this run ends with: a kill between a commit and the journal's
        note of it must not make that commit look like someone else's to `--recover`."""
        return f"{TRAILER}: {self.started} pid {self.pid}"


class Transaction:
    """The lock and the journal of one run (see the module docstring)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        folder = git_dir(repo)
        self.path = folder / JOURNAL
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
        branch = vcs.git("symbolic-ref", "-q", "--short", "HEAD", cwd=self.repo, check=False)
        head = vcs.git("rev-parse", "HEAD", cwd=self.repo)
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

    def sign(self, message: str) -> str:
        """A commit message of this run (see `Journal.trailer`)."""
        return f"{message}\n\n{self.journal.trailer}" if self.journal is not None else message

    def committed(self, sha: str) -> None:
        """Record a commit of the run's (a recovery rolls back only these)."""
        if self.journal is not None:
            self.journal.commits.append(sha)
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


def check_recoverable(repo: Path, journal: Journal, *, run_paths: tuple[str, ...]) -> None:
    """Before a `--recover`: no commit on top of the journal's but the run's own, and no change
    outside where the run writes, so the rollback takes nothing the user did since."""
    foreign = [
        sha
        for sha in vcs.git("rev-list", f"{journal.head}..HEAD", cwd=repo, check=False).split()
        if sha not in journal.commits and journal.trailer not in vcs.git("log", "-1", "--format=%B", sha, cwd=repo)
    ]
    if foreign:
        raise UserError(
            problem(
                "retrain --recover",
                "commits were made after the interrupted run, and rolling back would drop them",
                [sha[:8] for sha in foreign],
                "Move them to a branch of their own (`git branch keep <sha>`), then recover; re-apply them after",
            )
        )
    outside = [p for p in vcs.status_paths(cwd=repo, untracked=False) if not p.startswith(run_paths)]
    if outside:
        raise UserError(
            problem(
                "retrain --recover",
                "files the run never writes have uncommitted changes, and rolling back would discard them",
                outside[:8],
                "Commit or stash them first",
            )
        )


def _git_running(repo: Path) -> bool:
    import psutil

    for process in psutil.process_iter(["name", "cwd"]):
        try:
            if process.info["name"] == "git" and str(process.info["cwd"] or "").startswith(str(repo.resolve())):
                return True
        except psutil.Error:
            continue
    return False


def repair_dvc_rwlock(repo: Path) -> bool:
    """Remove DVC's stage lock file when it is not JSON: a dvc killed while writing it leaves it
    empty or cut, and every later dvc command then refuses ("JSON structure is corrupted"). DVC
    recreates it; only our own dvc group could hold it, and that group is stopped by now."""
    rwlock = repo / ".dvc" / "tmp" / "rwlock"
    try:
        json.loads(rwlock.read_text())
        return False
    except FileNotFoundError:
        return False
    except (ValueError, UnicodeDecodeError):
        rwlock.unlink(missing_ok=True)
        return True


def rollback(repo: Path, journal: Journal, *, dvc_checkout: Callable[[], str | None]) -> list[str]:
    """Put git, the tags, the created files and the DVC workspace back as `journal` found them;
    returns what was done, for the month's summary."""
    done: list[str] = []
    stop_group(journal.dvc_pgid, repo)
    index_lock = git_dir(repo) / "index.lock"
    if index_lock.exists() and not _git_running(repo):
        index_lock.unlink()
        done.append("removed a stale .git/index.lock")
    if repair_dvc_rwlock(repo):
        done.append("removed DVC's half-written .dvc/tmp/rwlock")
    if journal.branch and vcs.git("symbolic-ref", "-q", "--short", "HEAD", cwd=repo, check=False) != journal.branch:
        vcs.git("checkout", "-q", "-f", journal.branch, cwd=repo)
    if vcs.git("rev-parse", "HEAD", cwd=repo) != journal.head:
        done.append(f"git reset to {journal.head[:8]}")
    vcs.git("reset", "-q", "--hard", journal.head, cwd=repo)
    for ref, target in tags(repo).items():
        if ref not in journal.tags and ref.startswith(REGISTRY_TAGS):
            vcs.git("update-ref", "-d", ref, cwd=repo)
            done.append(f"deleted tag {ref.removeprefix('refs/tags/')}")
        elif ref in journal.tags and target != journal.tags[ref]:
            vcs.git("update-ref", ref, journal.tags[ref], cwd=repo)
            done.append(f"restored tag {ref.removeprefix('refs/tags/')}")
    for relative in journal.created:
        path = repo / relative
        if path.is_dir():  # a folder the month created (a new partition): gone unless git tracks some of it
            if not vcs.git("ls-files", "--", relative, cwd=repo, check=False):
                shutil.rmtree(path)
                done.append(f"removed {relative}/")
            continue
        leftovers = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
        for found in ([path] if path.is_file() else []) + leftovers:
            if not vcs.git("ls-files", "--", str(found.relative_to(repo)), cwd=repo, check=False):
                found.unlink()
                done.append(f"removed {found.relative_to(repo)}")
    problem_left = dvc_checkout()
    if problem_left:
        done.append(problem_left)
    log.warning("rolled back: %s", "; ".join(done) or "nothing had changed")
    return done
