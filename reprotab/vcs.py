"""Git and DVC for the commands beside the pipeline: the one place that runs git, finds the dvc
executable and starts it, and reads a file as a past commit holds it.

- `git(*args, cwd=)`: git's output, stripped. A failure raises `GitError`, whose message is the
  one grammar every git failure shows: "`git <args>` failed: <the end of git's stderr>"; with
  `check=False` a failure returns "" instead (for questions whose "no" is an exit status);
  `git_succeeds` asks only for the exit status.
- `status_paths`, `show_file`, `commit_of`, `git_dir`: what the commands ask git most.
- `dvc_executable()`: the environment's own dvc (next to this Python, which it runs), else the
  one on PATH; `run_dvc` runs it to the end, `start_dvc` starts it in its own process group.
- `read_at(path, rev=, repo=)`: a file's bytes at a revision, git-tracked or DVC-tracked (cache
  or remote), through `dvc.api.open`; `NotReadable` says why it could not be read.

The retraining transaction's own plumbing (a dirty-tree check, commits that a rollback can
undo) is reprotab/retrain/steps.py, built on this module.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


class GitError(subprocess.CalledProcessError):
    """A git command failed: "`git <args>` failed: <stderr>"."""

    def __str__(self) -> str:
        stderr = self.stderr.decode(errors="replace") if isinstance(self.stderr, bytes) else self.stderr or ""
        return f"`{' '.join(self.cmd)}` failed: {stderr.strip()[-500:]}"


class NotReadable(Exception):
    """A file could not be read at a revision (an unknown revision, a file in neither the DVC
    cache nor the remote, no such file): DVC's message, and in `kind` the type of its error."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.kind = type(cause).__name__


def _git(args: tuple[str, ...], cwd: str | Path | None, *, text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=text)


def git(*args: str, cwd: str | Path | None, check: bool = True) -> str:
    """Output of `git <args>` in `cwd`, stripped; a failure raises GitError, or with
    `check=False` returns ""."""
    result = _git(args, cwd)
    if result.returncode != 0:
        if check:
            raise GitError(result.returncode, ["git", *args], result.stdout, result.stderr)
        return ""
    return result.stdout.strip()


def git_succeeds(*args: str, cwd: str | Path | None) -> bool:
    """Whether `git <args>` exits 0 (`check-ignore -q`, `diff --cached --quiet`, ...); its output is dropped."""
    return _git(args, cwd).returncode == 0


def git_dir(cwd: str | Path) -> Path | None:
    """The .git folder of the repository `cwd` is in, or None outside git (or for a missing folder)."""
    if not Path(cwd).is_dir():
        return None
    found = git("rev-parse", "--git-dir", cwd=cwd, check=False)
    if not found:
        return None
    return Path(found) if Path(found).is_absolute() else Path(cwd) / found


def commit_of(rev: str, *, cwd: str | Path) -> str | None:
    """The full sha of the commit `rev` names, or None when it names none."""
    return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", cwd=cwd, check=False) or None


def show_file(rev: str, path: str, *, cwd: str | Path) -> str | None:
    """A git-tracked file's text at `rev` (`git show <rev>:<path>`), or None when git has none
    there (an unknown revision, a path git does not track)."""
    result = _git(("show", f"{rev}:{path}"), cwd)
    return result.stdout if result.returncode == 0 else None


def status_paths(*paths: str, cwd: str | Path, untracked: bool = True) -> list[str]:
    """Paths `git status` reports as changed (and, with `untracked`, new and not ignored) under
    `paths` (everything when none). Read with -z: a stripped text output loses the first line's
    leading status column, and with it the first letter of the first path."""
    args = ("status", "--porcelain", "-z", f"--untracked-files={'all' if untracked else 'no'}", "--", *paths)
    result = _git(args, cwd, text=False)
    if result.returncode != 0:
        raise GitError(result.returncode, ["git", *args], result.stdout, result.stderr)
    entries, found = result.stdout.decode().split("\0"), []
    while entries:
        entry = entries.pop(0)
        if len(entry) < 4:
            continue
        if entry[0] in "RC":  # a rename or copy: the next entry is its source path
            entries.pop(0)
        found.append(entry[3:])
    return found


def dvc_executable() -> str:
    """The environment's own dvc (next to this Python), else the one on PATH."""
    beside = Path(sys.executable).parent / "dvc"
    return str(beside) if beside.exists() else shutil.which("dvc") or "dvc"


def run_dvc(*args: str, cwd: str | Path | None) -> subprocess.CompletedProcess:
    """`dvc <args>` run to the end in `cwd`, its output (text) captured; the caller reads the status."""
    return subprocess.run([dvc_executable(), *args], cwd=cwd, capture_output=True, text=True)


def _die_with_parent() -> None:
    """In the dvc child: get SIGKILL when the parent dies (Linux), so a killed command leaves
    no dvc running on its own."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_dvc(*args: str, cwd: str | Path) -> subprocess.Popen:
    """`dvc <args>` started in `cwd` in a process group of its own (its pid is the group's id),
    stdout and stderr merged into one text pipe; it is killed when this process dies. Only for
    callers that run no threads (a preexec_fn is unsafe with threads)."""
    return subprocess.Popen(
        [dvc_executable(), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def read_parquet_at(path: str, *, rev: str | None, repo: str | Path) -> Any:
    """The Parquet table at `path` at `rev` as a pandas frame: one file, or a folder of part files
    (a table prepared in partitions) read in name order; NotReadable when it cannot be."""
    import io

    import pandas as pd
    from dvc.api import DVCFileSystem

    try:
        fs = DVCFileSystem(str(repo), rev=rev)
        if fs.isdir(path):
            names = sorted(name for name in fs.find(path) if name.endswith((".parquet", ".pq")))
            frames = [pd.read_parquet(io.BytesIO(fs.read_bytes(name))) for name in names]
            return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    except Exception as exc:  # an unknown rev, a file in neither cache nor remote: DVC raises many types
        raise NotReadable(exc) from exc
    return pd.read_parquet(io.BytesIO(read_at(path, rev=rev, repo=repo)))


def read_at(path: str, *, rev: str | None, repo: str | Path) -> bytes:
    """The bytes of `path` at `rev` of `repo` (a folder or a git URL; rev None: the workspace),
    git-tracked or DVC-tracked (read from the DVC cache, else the remote); NotReadable when it
    cannot be."""
    import dvc.api

    try:
        with dvc.api.open(path, repo=str(repo), rev=rev, mode="rb") as handle:
            return handle.read()
    except Exception as exc:  # an unknown rev, a file in neither cache nor remote: DVC raises many types
        raise NotReadable(exc) from exc
