"""What `reprotab monitor` judges (reprotab/monitoring/report.py): the model and the data it is judged
against, from one place, `inputs(...)`: the workspace's model and files, or a registered stage's or
version's model with the same files read at ITS commit (data through DVC, metrics through git), so
the verdict is about the model that serves, not whatever the workspace holds now.

The data is the drift reference the pipeline stored with the model (models/reference.json,
reprotab/monitoring/reference.py). Where there is none (a version registered before references
existed), it is of another model file, or a past commit's is damaged, it is built from the
training and test splits, as the reference stage builds it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths, vcs
from reprotab.engine.partitions import read_split
from reprotab.errors import UserError, problem
from reprotab.evaluate.importance import model_importance
from reprotab.model import served
from reprotab.monitoring.reference import SAMPLE_ROWS, DriftReference, build, parse
from reprotab.serving.scoring import local_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorInputs:
    """The model judged and what it is judged against (see `inputs`)."""

    model: served.TabularModel
    version: str | None  # vX.Y.Z, or local:<digest> for a model file
    commit: str | None  # the commit the model was trained at (None when unknown)
    source: str  # where it all came from, for the report
    reference: DriftReference  # the training split and the test split's scores, summarized
    test_metrics: dict[str, Any] | None  # evaluate's `test` block
    importance: pd.Series | None

    def judged(self) -> dict[str, Any]:
        return {"version": self.version, "commit": self.commit, "source": self.source}


def inputs(
    *,
    repo: str | Path = ".",
    stage: str | None = None,
    version: str | None = None,
    model: str | Path = paths.MODEL,
    drift_reference: str = paths.DRIFT_REFERENCE,
    reference: str = paths.TRAIN,
    holdout: str = paths.TEST,
    metrics: str = paths.EVALUATE_METRICS,
    importance: str = paths.IMPORTANCE,
) -> MonitorInputs:
    """What to monitor: the workspace's model and files (paths as given), or with `stage` or
    `version` the registered model and the files at its commit in `repo` (paths inside the repo)."""
    if stage and version:
        raise UserError(problem("monitor", "takes --stage or --version, not both", f"{stage}, {version}"))
    if not stage and not (version and not version.startswith("local:")):
        return _workspace(Path(model), version, drift_reference, reference, holdout, metrics, importance)
    from reprotab.registry import versions as registry  # GTO and DVC's API load only when asked for

    found, info = registry.load(stage=stage, version=version, repo=str(repo))
    commit = info["commit"]
    text = _git_show(repo, commit, metrics)
    test_metrics = read_metrics(text, where=f"{metrics} at {commit[:8]}")
    table = _open_at(repo, commit, importance)

    def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
        train = _table_at(repo, commit, reference, what="reference (the training split)")
        return train, _table_at(repo, commit, holdout, what="holdout (the test split)")

    stored = _open_at(repo, commit, drift_reference)
    where = f"{drift_reference} at {commit[:8]}"
    # the stored reference is the reference stage's output of the model's own commit: no digest to
    # compare; a damaged one cannot be written again at that commit, so it is rebuilt from the splits
    origin = f"{reference} at {commit[:8]}"
    summary = _reference(found, stored, where=where, sha256=None, tables=tables, origin=origin, rebuild_damaged=True)
    return MonitorInputs(
        model=found,
        version=info["version"],
        commit=commit,
        source=f"registry {f'stage {stage}' if stage else 'version'} {info['version']}, commit {commit[:8]} of {repo}",
        reference=summary,
        test_metrics=test_metrics,
        importance=load_importance(table, found, where=f"{importance} at {commit[:8]}"),
    )


def _workspace(
    model: Path, version: str | None, drift_reference: str, reference: str, holdout: str, metrics: str, importance: str
) -> MonitorInputs:
    found = served.load(model, where="--model")
    digest = local_version(model)
    sha256 = hashlib.sha256(model.read_bytes()).hexdigest()
    stored = Path(drift_reference)

    def tables() -> tuple[pd.DataFrame, pd.DataFrame]:
        def rows(path: str, where: str) -> pd.DataFrame:
            return read_split(path, sample_rows=SAMPLE_ROWS, seed=0, id_column=found.schema.id_column, where=where)

        return rows(reference, "--reference"), rows(holdout, "--holdout")

    if version and version != digest:
        raise UserError(problem("--version", f"names a model file's digest, and --model {model} is {digest}", version))
    metrics_path = Path(metrics)
    text = metrics_path.read_text(encoding="utf-8") if metrics_path.is_file() else None
    return MonitorInputs(
        model=found,
        version=digest,
        commit=None,  # a workspace file is not a registered version; its card names no commit
        source=f"workspace ({model}, {reference}, {holdout})",
        reference=_reference(
            found,
            stored.read_bytes() if stored.is_file() else None,
            where=str(stored),
            sha256=sha256,
            tables=tables,
            origin=f"{reference} and {holdout}",
        ),
        test_metrics=read_metrics(text, where=metrics),
        importance=load_importance(Path(importance).read_bytes() if Path(importance).is_file() else None, found),
    )


def _reference(
    model: served.TabularModel,
    stored: bytes | None,
    *,
    where: str,
    sha256: str | None,
    tables: Callable[[], tuple[pd.DataFrame, pd.DataFrame]],
    origin: str,
    rebuild_damaged: bool = False,
) -> DriftReference:
    """The stored reference when there is one of this model (`sha256` None: not compared), else
    one built from the training and test splits `tables` reads. A damaged stored one is refused,
    or with `rebuild_damaged` (a past commit's, which no run can write again) rebuilt with a warning."""
    if stored is not None:
        try:
            found = parse(stored, schema=model.schema, where=where)
        except UserError as exc:
            if not rebuild_damaged:
                raise
            log.warning("%s; building the reference from the splits instead", str(exc).split(" Run `dvc repro`")[0])
        else:
            if sha256 is None or found.model_sha256 == sha256:
                return found
            log.warning(
                "%s is of another model file (sha256 %s, --model is %s): building the reference from the splits",
                where,
                (found.model_sha256 or "unknown")[:12],
                sha256[:12],
            )
    else:
        log.info("%s not found: building the reference from the training and test splits", where)
    train, holdout = tables()
    return build(model, train, holdout, model_sha256=sha256, origin=f"built from {origin}")


def read_metrics(text: str | None, *, where: str) -> dict[str, Any] | None:
    """The `test` block of evaluate's metrics.json text (None, with a warning, when missing)."""
    test = json.loads(text).get("test") if text else None
    if test is None:
        log.warning("%s not found: performance is reported without test metrics to compare", where)
    return test


def _git_show(repo: str | Path, commit: str, path: str) -> str | None:
    return vcs.show_file(commit, path, cwd=repo) or None


def _open_at(repo: str | Path, commit: str, path: str) -> bytes | None:
    """A file's bytes at `commit` through DVC (git-tracked or DVC-tracked); None when unreadable."""
    try:
        return vcs.read_at(path, rev=commit, repo=repo)
    except vcs.NotReadable as exc:
        log.info("%s at %s not readable (%s)", path, commit[:8], exc)
        return None


def _table_at(repo: str | Path, commit: str, path: str, *, what: str) -> pd.DataFrame:
    data = _open_at(repo, commit, path)
    if data is None:
        raise UserError(
            problem(
                f"{what} {path} at commit {commit[:8]}",
                "cannot be read through DVC",
                str(repo),
                "Run `dvc push` where that version was trained (its data must be in a DVC remote or the cache)",
            )
        )
    if path.endswith(".csv"):
        return pd.read_csv(io.BytesIO(data))
    return pd.read_parquet(io.BytesIO(data))


def load_importance(
    table: Path | bytes | None, model: served.TabularModel, *, where: str = "importance table"
) -> pd.Series | None:
    """Permutation importance from evaluate's table (a path or its bytes) when readable, else the
    model's own."""
    if isinstance(table, Path):
        where, table = str(table), table.read_bytes() if table.is_file() else None
    if table is not None:
        frame = pd.read_csv(io.BytesIO(table))
        usable = [c for c in ("permutation", "model") if c in frame.columns and frame[c].notna().any()]
        if "feature" in frame.columns and usable:
            return frame.set_index("feature")[usable[0]].astype(float).fillna(0.0)
        log.warning("%s has no importance column; using the model's own importance", where)
    return model_importance(model)
