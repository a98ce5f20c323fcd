"""What must hold before a model version is registered: the version names a commit whose
model is exactly the one DVC recorded, and which anyone can get back.

A version is a git tag on a commit; what makes it reproducible is that the commit's dvc.lock
records the model's md5 and the DVC cache (and, for other machines, the DVC remote) holds that
file. So `register` refuses a repository without commits, a detached HEAD, uncommitted changes
in the files that decide the model, a model file that differs from dvc.lock, and a model that is
not in the DVC cache, each with the command that fixes it. A missing git or DVC remote is only a
warning: tags and cache entries work locally and can be pushed later.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reprotab import paths, vcs
from reprotab.data.tables import file_md5
from reprotab.errors import UserError, problem

# Files whose uncommitted changes would make the tagged commit describe another model than the one on disk.
MODEL_FILES = ("dvc.yaml", "dvc.lock", "params.yaml", "reprotab", "stages", "data", "models", paths.GATE_DIR, ".gto")


def check_repo(repo: Path, *, where: str = "-C") -> Path:
    """`repo` if it is a folder in a git repository; else a UserError (GTO would try to clone a
    missing path as a URL, and fail with a traceback on a folder outside git)."""
    if not repo.is_dir():
        raise UserError(
            problem(where, "folder not found", str(repo), "Pass the project's folder, e.g. -C path/to/project")
        )
    if vcs.git_dir(repo) is None:
        raise UserError(
            problem(
                where,
                "is not in a git repository (the registry is the repository's tags)",
                str(repo),
                "Pass the project's folder, or run `git init` and commit there first",
            )
        )
    return repo


def head_commit(repo: Path) -> str:
    """HEAD's commit on a branch, or a UserError for a repository without commits or a detached HEAD."""
    if not (repo / ".git").exists() and vcs.git_dir(repo) is None:
        raise UserError(problem("registry", "needs a git repository", str(repo), "Run `git init` and commit"))
    commit = vcs.commit_of("HEAD", cwd=repo)
    if not commit:
        raise UserError(
            problem(
                "registry",
                "the repository has no commits",
                None,
                "Commit the project first: `git add -A && git commit`",
            )
        )
    if not vcs.git_succeeds("symbolic-ref", "-q", "HEAD", cwd=repo):
        raise UserError(
            problem(
                "registry",
                "HEAD is detached, so the version would name a commit no branch keeps",
                commit[:8],
                "Check out a branch (`git switch main`) or create one (`git switch -c <name>`) first",
            )
        )
    return commit


def dirty_files(repo: Path, where: tuple[str, ...] = MODEL_FILES) -> list[str]:
    """Changed or new (not ignored) files under `paths`."""
    existing = [p for p in where if (repo / p).exists() or vcs.git("ls-files", p, cwd=repo, check=False)]
    return vcs.status_paths(*existing, cwd=repo) if existing else []


def locked_md5(repo: Path, commit: str, path: str = paths.MODEL) -> str | None:
    """The md5 dvc.lock at `commit` records for the output `path`, or None."""
    text = vcs.show_file(commit, "dvc.lock", cwd=repo)
    if not text:
        return None
    for stage in (yaml.safe_load(text) or {}).get("stages", {}).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") == path:
                return out.get("md5")
    return None


def check_registrable(repo: Path) -> tuple[str, str, list[str]]:
    """(commit, model md5, warnings) for HEAD, or a UserError saying what to do first."""
    commit = head_commit(repo)
    dirty = dirty_files(repo)
    if dirty:
        shown = ", ".join(dirty[:8]) + (f" and {len(dirty) - 8} more" if len(dirty) > 8 else "")
        raise UserError(
            problem(
                "registry register",
                "the files that decide the model have uncommitted changes, so the tag would not describe them",
                shown,
                "Commit them (`git add -A && git commit`), or restore them (`git restore <file>`), then register",
            )
        )
    md5 = locked_md5(repo, commit)
    if md5 is None:
        raise UserError(
            problem(
                "registry register",
                f"dvc.lock at HEAD records no {paths.MODEL}",
                commit[:8],
                "Run `dvc repro`, then `git add -A && git commit`",
            )
        )
    model = repo / paths.MODEL
    if not model.is_file():
        raise UserError(
            problem("registry register", "model file not found", paths.MODEL, "Run `dvc checkout` (or `dvc pull`)")
        )
    if file_md5(model) != md5:
        raise UserError(
            problem(
                "registry register",
                f"{paths.MODEL} differs from the model dvc.lock records at HEAD",
                commit[:8],
                "Run `dvc repro` and commit dvc.lock (`git add -A && git commit`), or `dvc checkout` to go back",
            )
        )
    from dvc.repo import Repo  # imported here: opening DVC is slow and only register needs it

    # with train.refit all the gate of a later month reads this version's judged model too
    judged = locked_md5(repo, commit, paths.JUDGED)
    stored = {paths.MODEL: md5, **({paths.JUDGED: judged} if judged and judged != md5 else {})}
    warnings = []
    with Repo(str(repo)) as dvc:
        for path, digest in stored.items():
            if not dvc.cache.local.exists(digest):
                raise UserError(
                    problem(
                        "registry register",
                        f"{path} is not in the DVC cache, so this version could not be loaded back",
                        digest,
                        "Run `dvc commit` (or `dvc repro`) so DVC stores it, then register",
                    )
                )
        try:
            remote = dvc.cloud.get_remote_odb()
        except Exception:  # no default remote: DVC raises its own NoRemoteError
            warnings.append("no DVC remote is configured: the model is in the local cache only")
        else:
            for path, digest in stored.items():
                try:
                    if not remote.exists(digest):
                        warnings.append(f"{path} is not in the DVC remote yet: run `dvc push` so others can load it")
                except Exception as exc:  # an unreachable remote must not block a local registration
                    warnings.append(f"could not check the DVC remote ({type(exc).__name__}); run `dvc push` to be sure")
                    break
    return commit, md5, warnings
