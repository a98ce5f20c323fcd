"""What each step of `reprotab retrain` does in its repository (reprotab/retrain/month.py holds
their order, the transaction around them and the command): the checks before the first write (a
clean tree, a batch file it may version), version the batch (`add_batch`), edit params.yaml,
set up the mode (refit, or continue the prod champion), run dvc as a step with its output in the
log, commit a run's files, push to the DVC remote, register and promote. A step that fails
raises StepFailed. Git and dvc themselves run through reprotab/vcs.py; rolling a failed month
back is reprotab/retrain/journal.py."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reprotab import paths, vcs
from reprotab.data.tables import atomic_path, read_table
from reprotab.errors import UserError, problem
from reprotab.model import served
from reprotab.params.loader import Params, parse_params
from reprotab.registry import versions as registry
from reprotab.retrain.journal import Transaction
from reprotab.retrain.summary import batch_action, set_value

OWN_OUTPUTS = (f"{paths.RETRAIN_REPORTS}/", f"{paths.MONITOR_REPORTS}/")  # rewritten by every run, never "dirty"
BATCHES = Path(paths.BATCHES)  # data.batches.dir as shipped: a month versions its batch there
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


def check_source(repo: Path, source: Path, params: Params | None = None) -> None:
    if not source.is_file():
        raise UserError(problem("--batch", "file not found", str(source)))
    folder = (repo / params.data.path).resolve() if params is not None else None
    if folder is not None and folder.is_dir() and source.resolve().is_relative_to(folder):
        raise UserError(
            problem(
                "--batch",
                "is inside the data.path folder, where a month adds its own partition (a failed month would remove it)",
                str(source),
                "Pass a file from outside the folder, e.g. the export itself",
            )
        )
    inside = source.resolve().is_relative_to(repo.resolve() / "data")
    if inside and not source.resolve().is_relative_to((repo / BATCHES).resolve()):
        ignored = vcs.git_succeeds("check-ignore", "-q", str(source.resolve()), cwd=repo)
        tracked = bool(vcs.git("ls-files", str(source.resolve()), cwd=repo, check=False))
        if not ignored and not tracked:
            raise UserError(
                problem(
                    "--batch",
                    "is an unversioned file under data/ (the registry refuses to register with it there)",
                    str(source),
                    f"Version it first (`dvc add {source}`, commit) or keep it outside data/",
                )
            )


def batch_destination(repo: Path, params: Params, name: str) -> Path:
    """Where a month's batch goes: data/batches/<name>.parquet, or with a folder `data.path` a new
    partition of it, <data.path>/batch=<name>/part-0.parquet (prepare then processes it alone,
    reprotab/engine/prepare.py). A folder must be tracked on its own (`dvc add <folder>`), so the
    month versions it by adding to it; anything else is refused with the command to run."""
    folder = repo / params.data.path
    if not folder.is_dir():
        return repo / BATCHES / f"{name}.parquet"
    if not folder.with_name(folder.name + ".dvc").is_file():
        raise UserError(
            problem(
                "data.path",
                "is a folder not tracked by its own .dvc file, so a month cannot add a partition to it",
                params.data.path,
                f"Track it: `dvc add {params.data.path}` and commit the .dvc file",
            )
        )
    return folder / f"batch={name}" / "part-0.parquet"


def add_batch(tx: Transaction, source: Path, name: str, rows: Any, params: Params) -> tuple[str, Path]:
    """Copy the batch to its destination (`batch_destination`) as Parquet and `dvc add` it (a new
    partition: the whole folder); never twice."""
    repo = tx.repo
    dest = batch_destination(repo, params, name)
    folder = repo / params.data.path
    partition = dest.parent.parent == folder
    tracked = folder.with_name(folder.name + ".dvc") if partition else dest.with_suffix(".parquet.dvc")
    action = batch_action(source, dest, source_rows=rows, dest_rows=read_table(dest) if dest.is_file() else None)
    if action == "add":
        if partition:
            tx.will_create(dest.parent)  # the whole batch=<name> folder goes on a rollback
        tx.will_create(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            if source.suffix.lower() in (".parquet", ".pq"):
                shutil.copyfile(source, tmp)
            else:
                rows.to_parquet(tmp, index=False)
    if partition:  # the folder's .dvc file changes (git restores it on a rollback); a no-op when current
        dvc(repo, "add", str(folder.relative_to(repo)))
    elif not partition and (action == "add" or not tracked.is_file()):
        tx.will_create(tracked)
        dvc(repo, "add", str(dest.relative_to(repo)))
    log.info("batch %s: %s as %s", name, action, dest.relative_to(repo))
    return action, dest


def batch_commit_paths(repo: Path, params: Params, dest: Path) -> list[str]:
    """What the month's "Add batch" commit holds: data/batches (or the folder's .dvc file) and params.yaml."""
    folder = repo / params.data.path
    if dest.parent.parent == folder:
        return [str(folder.with_name(folder.name + ".dvc").relative_to(repo)), "params.yaml"]
    return [str(BATCHES), "params.yaml"]


def edit_params(repo: Path, changes: dict[str, str]) -> list[str]:
    """Set params.yaml keys (YAML literals) that differ; the result must still be valid params."""
    path, done = repo / "params.yaml", []
    text = path.read_text()
    for key, value in changes.items():
        new = set_value(text, key, value)
        if new != text:
            done.append(f"{key}: {value}")
        text = new
    parse_params(yaml.safe_load(text))
    if done:
        path.write_text(text)
        log.info("params.yaml: %s", "; ".join(done))
    return done


def combine_changes(repo: Path, params: Params) -> dict[str, str]:
    """A batch file only trains the model when prepare adds batches: `none` becomes `all`. A
    partition of a folder `data.path` is part of the table already: nothing to change."""
    if (repo / params.data.path).is_dir():
        return {}
    return {"data.batches.combine": "all"} if params.data.batches.combine == "none" else {}


def prepare_mode(tx: Transaction, mode: str) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The params edits of the mode, and for continue the champion it starts from."""
    if mode == "refit":
        return {"train.init_model": "null"}, None
    try:
        model, info = registry.load(stage="prod", repo=str(tx.repo))
    except UserError as exc:
        raise UserError(f"{exc}\n  --mode continue starts from the prod champion; use --mode refit") from None
    tx.will_create(tx.repo / paths.PREVIOUS_MODEL)
    served.save(model, tx.repo / paths.PREVIOUS_MODEL)
    log.info("continue: prod champion %s (commit %s) → %s", info["version"], info["commit"][:8], paths.PREVIOUS_MODEL)
    return {"train.init_model": paths.PREVIOUS_MODEL}, info


def register_and_promote(repo: Path, *, promote: bool) -> dict[str, Any]:
    registered = registry.register(repo)
    version = registered["version"]
    if not promote:
        return {"action": f"registered {version}", "version": version, "detail": "promote on merge"}
    promoted = registry.promote(repo, version=version, stage="prod")
    return {
        "action": f"registered {version}, promoted to prod",
        "version": version,
        "stage": "prod",
        "detail": f"replaces {promoted.get('replaces') or 'none'}; {paths.CHAMPION} pinned",
    }
