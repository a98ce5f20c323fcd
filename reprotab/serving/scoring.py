"""Scoring rows with the served model: where the model comes from, how input rows are checked
and cleaned, and how a batch survives rows the model cannot score.

Batch scoring (`reprotab predict`, reprotab/serving/predict.py) and the service (reprotab/serving/service.py)
both go through here, so a row is scored the same way in both:

- `resolve_model(model=, stage=, version=)`: a model file, or a registered stage or version
  (reprotab.registry.versions, imported only when asked for), with `info` = version, stage, commit, path.
- rows are checked and cleaned before scoring by `reprotab.data.incoming.clean_incoming`, the one
  policy for every row that arrives after training (missing columns, text in numeric columns,
  ±inf, unseen categories).
- `score(model, rows)`: predictions and class probabilities; when the model raises on a chunk
  the chunk is bisected down to the rows that fail, which are returned with their error
  instead of failing the batch.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab import paths
from reprotab.errors import UserError, problem
from reprotab.model import served
from reprotab.model.schema import Schema
from reprotab.model.served import TabularModel

log = logging.getLogger(__name__)


def resolve_model(
    model: str | Path | None = None,
    *,
    stage: str | None = None,
    version: str | None = None,
    repo: str = ".",
    where: str = "--model",
) -> tuple[TabularModel, dict[str, Any]]:
    """The model to score with and what identifies it: {version, stage, commit, path}.

    `model` is a file (default models/model.zip); `stage` or `version` asks the model
    registry instead. At most one of the three."""
    chosen = [name for name, value in (("--model", model), ("--stage", stage), ("--version", version)) if value]
    if len(chosen) > 1:
        raise UserError(problem("model", "give one of --model, --stage, --version", " and ".join(chosen)))
    if stage or version:
        try:
            from reprotab.registry import versions as registry
        except ImportError:
            raise UserError(
                problem(
                    "--stage/--version",
                    "the model registry is not available in this installation",
                    stage or version,
                    "Pass a model file with --model",
                )
            ) from None
        found, info = registry.load(stage=stage, version=version, repo=repo)
        return found, {"stage": stage, "commit": None, "path": None, **info}
    path = Path(model or paths.MODEL)
    found = served.load(path, where=where)
    # a file outside the registry has no commit: its card names content only (reprotab/model/card.py)
    return found, {"version": local_version(path), "stage": None, "commit": None, "path": str(path)}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--model", help="a model file (default models/model.zip)")
    group.add_argument("--stage", help="the model registered in this stage (e.g. prod)")
    group.add_argument("--version", help="the registered model of this version")


def local_version(path: str | Path) -> str:
    """`local:<first 12 hex of the file's sha256>`: a model file's identity without a registry."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"local:{digest.hexdigest()[:12]}"


@dataclass
class Scores:
    """What scoring some rows produced: positions (0-based, into the rows given) of the rows
    scored, their predictions and probabilities, and the rows that failed with why."""

    index: np.ndarray
    predictions: np.ndarray
    proba: np.ndarray | None
    failed: list[tuple[int, str]] = field(default_factory=list)


def score(model: TabularModel, rows: pd.DataFrame | np.ndarray) -> Scores:
    """Predict `rows` (cleaned raw rows, or the matrix the model's plan made of them); rows the
    model raises on are bisected out, not fatal. The one scoring path of batch scoring and the
    service: the plan's matrix, the booster, the calibrator, the threshold."""
    matrix = model.plan.frame_matrix(rows) if isinstance(rows, pd.DataFrame) else rows
    classification = model.schema.task == "classification"
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    failed: list[tuple[int, str]] = []

    def run(start: int, stop: int) -> None:
        try:
            predicted = model.predict_featurized(matrix[start:stop])
            if classification:
                parts.append((np.arange(start, stop), model.classes[model.class_indices(predicted)], predicted))
            else:
                parts.append((np.arange(start, stop), predicted, None))
        except (ValueError, TypeError, ArithmeticError) as exc:
            if stop - start == 1:
                failed.append((start, f"{type(exc).__name__}: {exc}".splitlines()[0]))
                return
            middle = (start + stop) // 2
            run(start, middle)
            run(middle, stop)

    if len(matrix):
        run(0, len(matrix))
    if not parts:
        width = len(model.schema.classes)
        empty_proba = np.empty((0, width)) if classification else None
        return Scores(np.empty(0, dtype=int), np.empty(0, dtype=object), empty_proba, failed)
    if len(parts) == 1:
        return Scores(parts[0][0], parts[0][1], parts[0][2], failed)
    index = np.concatenate([p[0] for p in parts])
    predictions = np.concatenate([p[1] for p in parts])
    proba = np.concatenate([p[2] for p in parts]) if classification else None
    return Scores(index, predictions, proba, failed)


def proba_columns(schema: Schema) -> list[str]:
    """`proba_<class>` for each class, in the model's class order."""
    return [f"proba_{c}" for c in schema.classes] if schema.task == "classification" else []
