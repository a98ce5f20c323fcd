"""Tracking mirrors: copy what DVC knows about runs into MLflow or Comet.

    reprotab mirror mlflow [--rev REV | --all-experiments] [--tracking-uri URI] [--aliases]
    reprotab mirror comet  [--rev REV | --all-experiments] [--offline-dir .comet-offline]

DVC stays the source of truth; a mirror is a read-only copy for teams that browse runs in
another tool. Everything is read through `dvc.api` (params_show, metrics_show, exp_show, open,
DVCFileSystem), so a past commit or an experiment is mirrored the same way as the workspace:
- the workspace (default): its params, metrics, figures and model, keyed by HEAD's sha;
- `--rev REV`: that git revision (its outputs come from the DVC cache or remote);
- `--all-experiments`: the baseline commit and every finished DVC experiment (`dvc exp show`).
Each becomes one run tagged with the git sha, the experiment name and the hash of the raw data
(its md5 in dvc.lock, else the model's training_data_hash). This module collects every
`Snapshot` before anything is logged (a revision without metrics stops the command, except
under --all-experiments where it is skipped with a warning); reprotab/tracking/mirror_mlflow.py and
reprotab/tracking/mirror_comet.py check their tracker first (`connect`), then log them (`write`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reprotab import paths, vcs
from reprotab.errors import UserError, problem
from reprotab.model.card import ModelCard
from reprotab.runner import stage_main

log = logging.getLogger(__name__)
WORKSPACE = "workspace"
BACKENDS = {"mlflow": "reprotab.tracking.mirror_mlflow", "comet": "reprotab.tracking.mirror_comet"}


@dataclass
class Snapshot:
    """One run to mirror: what DVC recorded for the workspace, a commit or an experiment."""

    rev: str | None  # None: the workspace
    sha: str
    name: str  # run name: the experiment's, else the short sha, else "workspace"
    experiment: str  # DVC experiment name, or "workspace" / "commit"
    params: dict[str, Any]
    metrics: dict[str, float]
    data_hash: str | None
    files: dict[str, Path] = field(default_factory=dict)  # artifact path → local copy
    example: pd.DataFrame | None = None  # raw rows (validation split) for the model's signature

    @property
    def key(self) -> str:
        """What identifies the run in the tracker: the sha, and for the workspace also that it is one."""
        return f"{WORKSPACE}@{self.sha}" if self.rev is None else self.sha

    @property
    def tags(self) -> dict[str, str]:
        return {
            "reprotab.key": self.key,
            "git_sha": self.sha,
            "dvc_experiment": self.experiment,
            "data_hash": self.data_hash or "unknown",
        }


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a/b": 1}; lists and other leaves are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{name}/")
        else:
            flat[name] = value
    return flat


def numeric_metrics(tree: dict[str, Any]) -> dict[str, float]:
    """The numbers among DVC's metrics (text such as the sampler's reason is not a metric)."""
    flat = flatten(tree)
    return {k: float(v) for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def git_sha(rev: str, root: Path) -> str:
    sha = vcs.commit_of(rev, cwd=root)
    if sha is None:
        raise UserError(problem("--rev", "is not a git revision of this repository", rev, "Try HEAD or a branch"))
    return sha


def revisions(*, rev: str | None, all_experiments: bool, root: Path) -> list[tuple[str | None, str]]:
    """(rev or None for the workspace, experiment name) for each run to mirror."""
    if not all_experiments:
        return [(rev, "commit" if rev else WORKSPACE)]
    import dvc.api

    rows = dvc.api.exp_show(repo=str(root))
    found = [
        (row["rev"], row["Experiment"] or "commit")
        for row in rows
        if row["rev"] != WORKSPACE and row.get("State") in (None, "Success")
    ]
    if not any(name != "commit" for _, name in found):
        raise UserError(
            problem(
                "--all-experiments",
                "found no finished DVC experiment to mirror",
                None,
                "Run one with `dvc exp run -S seed=1`, or mirror the workspace (no option) or a commit (--rev)",
            )
        )
    return found


def collect(rev: str | None, experiment: str, *, root: Path, workdir: Path) -> Snapshot:
    """Params, metrics, data hash, model and figures of one revision (None: the workspace)."""
    import dvc.api

    sha = git_sha(rev or "HEAD", root)
    where = f"revision {rev}" if rev else "the workspace"
    fix = "Run `dvc repro` (and commit) or `dvc exp run` first, or `dvc pull` the outputs of that revision"
    try:
        params = dvc.api.params_show(repo=str(root), rev=rev)
        metrics = numeric_metrics(dvc.api.metrics_show(repo=str(root), rev=rev))
    except FileNotFoundError as exc:  # a metrics file dvc.lock names but neither git nor the cache holds
        raise UserError(
            problem(where, f"has no metrics to mirror ({exc.strerror}: {exc.filename})", None, fix)
        ) from None
    except Exception as exc:  # dvc raises many types: an unknown rev, no DVC repo, a broken file
        raise UserError(problem(where, f"cannot be read by DVC ({type(exc).__name__}: {exc})")) from None
    if not metrics:
        raise UserError(problem(where, "has no metrics to mirror", None, fix))
    name = experiment if experiment not in ("commit", WORKSPACE) else (sha[:7] if rev else WORKSPACE)
    snapshot = Snapshot(rev, sha, name, experiment, flatten(params), metrics, _data_hash(rev, root, params))
    with _fs(rev, root) as fs:
        for path in [paths.MODEL, paths.MODEL_META, *_figures(fs)]:
            local = workdir / sha[:12] / path
            try:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(fs.read_bytes(path))
            except Exception as exc:  # not in the cache or the remote: mirror what there is
                log.warning("%s: %s not available (%s); mirrored without it", where, path, type(exc).__name__)
                continue
            snapshot.files[path] = local
        with contextlib.suppress(Exception), fs.open(paths.VALIDATION, mode="rb") as handle:
            snapshot.example = pd.read_parquet(handle).head(200)  # without rows: no signature
    if snapshot.data_hash is None and paths.MODEL_META in snapshot.files:
        card = ModelCard.beside(snapshot.files[paths.MODEL_META])  # None: an older or broken card
        snapshot.data_hash = card.training_data_hash if card else None
    return snapshot


@contextlib.contextmanager
def _fs(rev: str | None, root: Path) -> Iterator[Any]:
    import dvc.api

    fs = dvc.api.DVCFileSystem(str(root), rev=rev)
    try:
        yield fs
    finally:
        with contextlib.suppress(Exception):
            fs.close()


def _figures(fs: Any) -> list[str]:
    try:
        return sorted(p for p in fs.find(paths.FIGURES) if p.endswith(".png"))
    except Exception:
        return []


def _data_hash(rev: str | None, root: Path, params: dict[str, Any]) -> str | None:
    """The md5 DVC recorded for the raw table (`data.path`) in dvc.lock at that revision."""
    try:
        lock = yaml.safe_load(vcs.read_at("dvc.lock", rev=rev, repo=root))
    except (vcs.NotReadable, yaml.YAMLError):
        return None
    path = (params.get("data") or {}).get("path")
    for stage in (lock or {}).get("stages", {}).values():
        for dep in stage.get("deps", []):
            if dep.get("path") == path and dep.get("md5"):
                return dep["md5"]
    return None


def require(module: str, extra: str) -> Any:
    """An optional tracking library, or a UserError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            problem(f"reprotab mirror {extra}", f"needs the {module} package", None, f"pip install '.[{extra}]'")
        ) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reprotab mirror", description="Copy DVC runs into MLflow or Comet.")
    sub = parser.add_subparsers(dest="backend", required=True, metavar="{mlflow,comet}")
    for backend in BACKENDS:
        one = sub.add_parser(backend, help=f"mirror into {backend}")
        which = one.add_mutually_exclusive_group()
        which.add_argument("--rev", help="a git revision to mirror instead of the workspace")
        which.add_argument("--all-experiments", action="store_true", help="the baseline and every DVC experiment")
        one.add_argument("--repo", default=".", help="the DVC repository (default: here)")
        one.add_argument("--project", default="reprotab", help="MLflow experiment / Comet project name")
        if backend == "mlflow":
            one.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns.db")
            one.add_argument(
                "--aliases", action="store_true", help="register the models; alias champion and challenger"
            )
            one.add_argument("--model-name", default="reprotab", help="registered model name (with --aliases)")
        else:
            one.add_argument("--offline-dir", default=".comet-offline", help="where offline archives go")
            one.add_argument("--offline", action="store_true", help="offline even when an API key is set")
    return parser.parse_args(argv)


@stage_main("mirror", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    backend = importlib.import_module(BACKENDS[args.backend])
    root = Path(args.repo).resolve()
    if not (root / "dvc.yaml").is_file():
        raise UserError(problem("--repo", "is not a DVC project (no dvc.yaml)", str(root)))
    session = backend.connect(args)  # the tracker is checked first: nothing is logged if it is unreachable
    targets = revisions(rev=args.rev, all_experiments=args.all_experiments, root=root)
    with tempfile.TemporaryDirectory(prefix="reprotab-mirror-") as tmp:
        snapshots = []
        for rev, experiment in targets:
            try:
                snapshots.append(collect(rev, experiment, root=root, workdir=Path(tmp)))
            except UserError as exc:
                if not args.all_experiments:
                    raise
                log.warning("skipped: %s", exc)
        backend.write(session, snapshots, args)
