"""`reprotab predict` over a folder of partitions: one task per partition, in this process or on a
Dask cluster, into a folder of the same layout, appearing atomically, new partitions only.

Each partition is scored by `predict_file` (the same cleaning, columns and error list as a single
file) into `<output>/<its path>` (suffix .parquet). Rows it cannot score are listed under
`<output>/_errors/`. `<output>/_manifest.json` records, per partition, its content hash and the
model's: a rerun with the same model reuses the scored file of every partition it has seen and
scores only the new ones, so a new day's partition costs its own rows. The new folder is built
beside the old one (reused files hard-linked, not copied) and renamed over it only when every
partition has been scored: a failure keeps the previous output whole.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.tables import fresh_dir, read_json, read_parquet, write_json
from reprotab.engine.cluster import run_all
from reprotab.engine.partitions import Partition, list_partitions
from reprotab.errors import UserError, problem
from reprotab.stats.metrics import Scored

MANIFEST = "_manifest.json"  # `_` keeps it out of a reader's partitions, as Spark's _SUCCESS
ERRORS = "_errors"
log = logging.getLogger(__name__)


def output_name(partition: Partition) -> str:
    """Where a partition's scores go inside the output folder: its own path, as Parquet."""
    return str(Path(partition.name).with_suffix(".parquet").as_posix())


class _ScoreTask:
    """Scoring one partition, with its settings: a picklable callable for the cluster."""

    def __init__(self, model: Any, version: str, folder: Path, chunk_rows: int) -> None:
        self.model, self.version, self.folder, self.chunk_rows = model, version, folder, chunk_rows

    def __call__(self, partition: Partition) -> dict[str, Any]:
        from reprotab.model import served
        from reprotab.serving.predict import errors_path, predict_file

        model = served.loads(self.model) if isinstance(self.model, bytes) else self.model
        target = self.folder / output_name(partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        counts = predict_file(
            model, version=self.version, input=partition.path, output=target, chunk_rows=self.chunk_rows, progress=False
        )
        errors = errors_path(target)
        if errors.exists():  # out of the scores' folder, so a reader of it sees scores only
            moved = self.folder / ERRORS / (output_name(partition) + ".errors.csv")
            moved.parent.mkdir(parents=True, exist_ok=True)
            errors.replace(moved)
        return counts


def predict_folder(
    model: Any, *, version: str, input: str | Path, output: str | Path, chunk_rows: int, client: Any = None
) -> dict[str, Any]:
    """Score every partition of the folder `input` into the folder `output`; returns rows read,
    scored, failed and partitions scored and reused."""
    input, output = Path(input), Path(output)
    if output.exists() and not output.is_dir():
        raise UserError(problem("--output", "must be a folder when --input is one", str(output)))
    if output.resolve() == input.resolve() or input.resolve() in output.resolve().parents:
        raise UserError(problem("--output", "must be outside the --input folder", str(output)))
    partitions = list_partitions(input, where="--input")
    content = model.to_bytes()
    model_sha = hashlib.sha256(content).hexdigest()
    old = _manifest(output)
    seen = {e["sha256"]: e for e in old.get("partitions", []) if old.get("model_sha256") == model_sha}
    reused = [p for p in partitions if p.sha256 in seen and (output / seen[p.sha256]["output"]).is_file()]
    todo = [p for p in partitions if p not in reused]
    entries: dict[str, dict[str, Any]] = {}
    with fresh_dir(output) as folder:
        for p in reused:  # the previous output's file, linked into the new folder
            entry = seen[p.sha256]
            _link(output / entry["output"], folder / output_name(p))
            for name in entry.get("errors", []):
                _link(output / name, folder / name)
            entries[p.sha256] = {**entry, "name": p.name, "output": output_name(p)}
        # to a worker the bundle's bytes travel, which it loads and checks as any model file
        task = _ScoreTask(model if client is None else content, version, folder, chunk_rows)
        for p, counts in zip(todo, run_all(task, todo, client), strict=True):
            errors = folder / ERRORS / (output_name(p) + ".errors.csv")
            listed = [errors.relative_to(folder).as_posix()] if errors.exists() else []
            entries[p.sha256] = {
                "name": p.name,
                "sha256": p.sha256,
                "output": output_name(p),
                "errors": listed,
                **counts,
            }
        ordered = [entries[p.sha256] for p in partitions]
        write_json({"model_sha256": model_sha, "version": version, "partitions": ordered}, folder / MANIFEST)
    totals = {key: sum(e[key] for e in ordered) for key in ("rows", "scored", "failed")}
    return {**totals, "partitions": len(partitions), "processed": len(todo), "reused": len(reused)}


class _EvaluateTask:
    """Scoring one part file of a prepared split for evaluate: a picklable callable for the cluster."""

    def __init__(self, model: bytes, columns: list[str]) -> None:
        self.model, self.columns = model, columns

    def __call__(self, path: str) -> tuple[Any, Any, pd.DataFrame]:
        from reprotab.evaluate.scores import scored_predictions
        from reprotab.model import served

        rows = read_parquet(path)
        scored, raw = scored_predictions(served.loads(self.model), rows, raw=True)
        return scored, raw, rows[self.columns].reset_index(drop=True)


def score_split(model: Any, folder: Path, client: Any) -> tuple[Scored, Any, pd.DataFrame]:
    """evaluate on a split kept as part files (engine dask): each part scored on a worker by the
    served model, exactly as one table would be, and the pieces joined in part order: the
    predictions, the estimator's own probabilities (with a calibrator, else None), and the id and
    target columns (what predictions.csv names each row by)."""
    schema = model.schema
    files = sorted(str(p) for p in folder.glob("*.parquet"))
    if not files:
        raise UserError(problem(str(folder), "holds no part file", None, "Run prepare again (dvc repro)"))
    columns = [c for c in (schema.id_column, schema.target) if c]
    pieces = run_all(_EvaluateTask(model.to_bytes(), columns), files, client)
    first = pieces[0][0]
    joined = Scored(
        y_true=np.concatenate([p[0].y_true for p in pieces]),
        y_pred=np.concatenate([p[0].y_pred for p in pieces]),
        proba=None if first.proba is None else np.concatenate([p[0].proba for p in pieces]),
        positive=first.positive,
    )
    raw = None if pieces[0][1] is None else np.concatenate([p[1] for p in pieces])
    return joined, raw, pd.concat([p[2] for p in pieces], ignore_index=True)


def _manifest(output: Path) -> dict[str, Any]:
    try:
        found = read_json(output / MANIFEST)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a copy
        shutil.copy2(source, target)
