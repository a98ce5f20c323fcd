"""Pseudo-labeling (self-training): confident predictions on unlabeled rows become extra training rows.

Used by train when `train.pseudo_labeling.enabled` (off by default: on the benchmarks in
bench/active_learning.py it did not improve the test metric; docs/operations/labeling.md has the figures). One round:

1. fit on the real training rows (reprotab/train/fit.py `fit`, unchanged) plus the pseudo-labeled
   rows so far;
2. on the validation split, choose per class the lowest probability threshold at which the
   validation rows predicted as that class with at least that confidence reach
   `target_precision` (and number at least `min_support`); a class without one gets no rows;
3. label the unlabeled rows predicted as a class with at least its threshold, at most up to
   `max_share` of all training rows (the most confident first, classes in proportion);
4. refit with them at sample weight `weight`; stop after `max_iter` rounds or when a round adds
   nothing (sklearn's SelfTrainingClassifier does the same with one global threshold).

Pseudo-labeled rows only ever join the training rows: validation and test rows are never
labeled or added (unlabeled rows whose id is in a prepared split are dropped first), and they
join after resampling (`fit`'s `extra_rows`), so a sampler never treats them as real minority
rows. The precision recorded per round is measured on the same validation rows that chose the
threshold, so it is an optimistic estimate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.incoming import clean_incoming, log_notes
from reprotab.data.tables import READERS, read_table
from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema, encode_target
from reprotab.params.sections import PseudoLabelingParams
from reprotab.train.fit import fit

WHERE = "data.unlabeled_path"
log = logging.getLogger(__name__)


def read_unlabeled(path: str | Path) -> pd.DataFrame:
    """The unlabeled rows: one CSV/Parquet file, or every such file in a folder (concatenated)."""
    path = Path(path)
    if not path.is_dir():
        return read_table(path, where=WHERE)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in READERS)
    if not files:
        raise UserError(
            problem(WHERE, "holds no .csv or .parquet file, so there are no unlabeled rows", str(path), _FIX)
        )
    return pd.concat([read_table(f, where=WHERE) for f in files], ignore_index=True)


_FIX = "Put a table of rows without the target there, or point data.unlabeled_path at one"


def unlabeled_features(
    frame: pd.DataFrame, *, schema: Schema, featurizer: Any, known_ids: dict[str, Iterable[Any]]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Clean the unlabeled rows (reprotab/data/incoming.py, the policy for every incoming row), drop
    those whose id is in a split (`known_ids`: split name → ids) and featurize them with train's
    fitted featurizer. The result is indexed by id (by position without an id column)."""
    if schema.target in frame.columns and frame[schema.target].notna().any():
        raise UserError(
            problem(
                WHERE,
                f"holds values of the target '{schema.target}'",
                f"{int(frame[schema.target].notna().sum())} labeled rows",
                "Labeled rows belong in data.path (or data/batches); keep only rows without a label here",
            )
        )
    cleaned = clean_incoming(frame, schema, featurizer=featurizer, where=WHERE)
    log_notes(cleaned.notes, where=WHERE)
    rows = cleaned.frame
    dropped: dict[str, int] = {}
    if schema.id_column and schema.id_column in rows.columns:
        ids = rows[schema.id_column].astype(str)
        for split, known in known_ids.items():
            hit = ids.isin({str(i) for i in known})
            if hit.any():
                dropped[split] = int(hit.sum())
                rows, ids = rows[~hit], ids[~hit]
        if dropped:
            log.warning("%s: dropped rows whose id is already in a labeled split: %s", WHERE, dropped)
    else:
        log.warning("%s: no id column, so overlap with the labeled splits cannot be checked", WHERE)
    if rows.empty:
        raise UserError(problem(WHERE, "has no rows left after dropping those already in a split", 0, _FIX))
    features = featurizer.transform(rows[list(schema.features)])
    features.index = rows[schema.id_column].to_numpy() if schema.id_column in rows.columns else range(len(rows))
    return features, {"rows": len(frame), "dropped_known_ids": dropped}


def probabilities(model: Any, X: pd.DataFrame) -> np.ndarray:
    """A fitted TabularModel's (calibrated) probabilities on already-featurized rows."""
    return model.predict_featurized(X)


def class_thresholds(
    proba: np.ndarray, y: np.ndarray, *, target_precision: float, min_support: int = 1
) -> list[dict[str, Any]]:
    """Per class k: the lowest threshold t such that the validation rows predicted as k with
    probability ≥ t are at least `min_support` and have precision ≥ `target_precision`.
    `threshold` is None when no t qualifies. Rows are predicted as their most probable class."""
    predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    result: list[dict[str, Any]] = []
    for k in range(proba.shape[1]):
        mask = predicted == k
        order = np.argsort(-confidence[mask], kind="stable")
        p, correct = confidence[mask][order], (y[mask][order] == k)
        precision = np.cumsum(correct) / np.arange(1, len(p) + 1)
        last_of_tie = np.append(p[1:] != p[:-1], True)  # t = p[i] takes every row down to the end of its tie
        support = np.arange(1, len(p) + 1)
        ok = np.flatnonzero(last_of_tie & (precision >= target_precision) & (support >= min_support))
        if len(ok):
            i = ok[-1]
            result.append({"threshold": float(p[i]), "precision": float(precision[i]), "support": int(support[i])})
        else:
            result.append({"threshold": None, "precision": None, "support": 0})
    return result


def room_left(*, real_rows: int, pseudo_rows: int, max_share: float) -> int:
    """How many more pseudo-labeled rows keep them at most `max_share` of all training rows."""
    return max(0, int(np.floor(max_share / (1 - max_share) * real_rows + 1e-9)) - pseudo_rows)


def pick(proba: np.ndarray, thresholds: list[dict[str, Any]], room: int) -> tuple[np.ndarray, np.ndarray]:
    """(row positions, class indices) of the rows to pseudo-label: predicted class k with
    probability ≥ k's threshold; beyond `room`, classes keep their share and the most confident win."""
    predicted, confidence = proba.argmax(axis=1), proba.max(axis=1)
    per_class = []
    for k, entry in enumerate(thresholds):
        t = entry["threshold"]
        rows = np.flatnonzero((predicted == k) & (confidence >= t)) if t is not None else np.array([], dtype=int)
        per_class.append(rows[np.argsort(-confidence[rows], kind="stable")])
    total = sum(len(r) for r in per_class)
    if total > room:
        exact = np.array([room * len(r) / total for r in per_class])
        quota = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - quota), kind="stable")[: room - quota.sum()]:
            quota[k] += 1
        per_class = [r[:q] for r, q in zip(per_class, quota, strict=True)]
    chosen = np.concatenate([np.asarray(r, dtype=int) for r in per_class]) if per_class else np.array([], dtype=int)
    return chosen, predicted[chosen]


def self_train(
    *,
    unlabeled: pd.DataFrame,
    config: PseudoLabelingParams,
    features: pd.DataFrame,
    schema: Schema,
    validation: pd.DataFrame | None = None,
    **fit_kwargs: Any,
) -> tuple[Any, dict[str, Any], pd.Series]:
    """`fit` in rounds with pseudo-labeled rows from `unlabeled` (featurized, without target).
    Returns the last model, fit's summary plus a `pseudo_labeling` entry per round, and the
    pseudo-labels given (class indices, indexed like `unlabeled`)."""
    if schema.task != "classification":
        raise UserError(problem("train.pseudo_labeling.enabled", "applies to classification only", schema.task))
    if validation is None or validation.empty:
        raise UserError(problem("train.pseudo_labeling", "needs rows in the validation split to choose thresholds"))
    X_val, y_val = validation.drop(columns=[schema.target]), encode_target(validation[schema.target], schema)
    columns = [c for c in features.columns if c != schema.target]
    unlabeled = unlabeled[columns]
    remaining = np.arange(len(unlabeled))
    chosen_rows, chosen_labels = np.array([], dtype=int), np.array([], dtype=int)
    common = {"features": features, "schema": schema, "validation": validation, **fit_kwargs}
    model, summary = fit(**common)
    rounds: dict[str, Any] = {}
    stop = f"max_iter {config.max_iter} reached"
    for round_ in range(1, config.max_iter + 1):
        thresholds = class_thresholds(
            probabilities(model, X_val), y_val, target_precision=config.target_precision, min_support=config.min_support
        )
        room = room_left(real_rows=len(features), pseudo_rows=len(chosen_rows), max_share=config.max_share)
        picked, labels = pick(probabilities(model, unlabeled.iloc[remaining]), thresholds, room)
        if not len(picked):
            stop = "max_share reached" if room == 0 else "no unlabeled row reached a class threshold"
            break
        chosen_rows = np.concatenate([chosen_rows, remaining[picked]])
        chosen_labels = np.concatenate([chosen_labels, labels])
        remaining = np.delete(remaining, picked)
        extra = (unlabeled.iloc[chosen_rows], chosen_labels, np.full(len(chosen_rows), config.weight))
        model, summary = fit(**common, extra_rows=extra)
        rounds[f"round_{round_}"] = {
            "added": {str(c): int((labels == k).sum()) for k, c in enumerate(schema.classes)},
            "thresholds": {str(c): t["threshold"] for c, t in zip(schema.classes, thresholds, strict=True)},
            "validation_precision": {str(c): t["precision"] for c, t in zip(schema.classes, thresholds, strict=True)},
            "validation_rows": {str(c): t["support"] for c, t in zip(schema.classes, thresholds, strict=True)},
            "pseudo_rows_total": len(chosen_rows),
        }
        added = rounds[f"round_{round_}"]["added"]
        log.info("pseudo-labeling round %d: added %s (%d in all)", round_, added, len(chosen_rows))
    summary["pseudo_labeling"] = {
        "unlabeled_rows": len(unlabeled),
        "pseudo_rows": len(chosen_rows),
        "pseudo_share": round(len(chosen_rows) / (len(features) + len(chosen_rows)), 4),
        "weight": config.weight,
        "rounds": rounds,
        "stopped": stop,
    }
    return model, summary, pd.Series(chosen_labels, index=unlabeled.index[chosen_rows], name=schema.target)


def trainer(*, unlabeled: pd.DataFrame, config: PseudoLabelingParams, info: dict[str, Any]) -> Any:
    """A drop-in for `fit` (same keyword arguments) that self-trains; `info` joins the summary."""

    def run(**kwargs: Any) -> tuple[Any, dict[str, Any]]:
        model, summary, _ = self_train(unlabeled=unlabeled, config=config, **kwargs)
        summary["pseudo_labeling"].update(info)
        return model, summary

    return run


def trainer_for(path: str, settings: Any, *, schema: Schema, featurizer: Any, read_split: Any) -> Any:
    """`fit` with pseudo-labeling on data.unlabeled_path. `read_split(name, columns)` gives a
    prepared split: only the id column of each is read, to keep those rows out of pseudo-labels."""
    split_ids = {}
    if schema.id_column:
        for split in ("train", "validation", "test"):  # only the ids: rows never to pseudo-label
            split_ids[split] = read_split(split, [schema.id_column])[schema.id_column]
    unlabeled, info = unlabeled_features(
        read_unlabeled(path),
        schema=schema,
        featurizer=featurizer,
        known_ids=split_ids,
    )
    return trainer(unlabeled=unlabeled, config=settings.pseudo_labeling, info=info)
