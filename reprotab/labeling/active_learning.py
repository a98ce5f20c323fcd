"""Active learning: choose the pool rows whose labels would teach the model most, as a labeling queue.

    reprotab query --pool FILE [--n 200] [--strategy margin|entropy|least_confidence|random]
                   [--diversity] [--model models/model.zip] [--out labeling/queue.csv] [--label-studio]

Writes the queue (CSV): the id column, rank, strategy, score (higher = more uncertain), the
model's current prediction and its probability, the model version (sha256 prefix of the model
file), the raw feature values and an empty `label` column to fill in. `--label-studio` also
writes `<out>.json`, a Label Studio import (a list of {"data": {...}} tasks). Filled-in labels
come back with `reprotab labels import FILE` (reprotab/labeling/labels.py).

Strategies score each row's class probabilities: margin = 1 - (p1 - p2) of the two most
probable classes, entropy = -sum p log p, least_confidence = 1 - max p, random = a seeded draw
(the baseline every strategy must beat; bench/active_learning.py measures it). `--diversity`
keeps the queue from being n near-copies of one uncertain region: of the 5 x n most uncertain
rows, k-means (MiniBatchKMeans, seeded, on the standardized model features) forms n clusters
and each gives its most uncertain row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab import paths
from reprotab.data.incoming import MIN_SHARE, clean_incoming, log_notes
from reprotab.data.tables import READERS, atomic_path, read_table
from reprotab.errors import UserError, one_of, problem
from reprotab.model.served import TabularModel, load
from reprotab.params.loader import load_params
from reprotab.runner import stage_main

STRATEGIES = ("margin", "entropy", "least_confidence", "random")
CANDIDATES_PER_PICK = 5  # --diversity clusters the 5 x n most uncertain rows
log = logging.getLogger(__name__)


def uncertainty(proba: np.ndarray, strategy: str, *, seed: int = 0) -> np.ndarray:
    """One score per row, higher = more uncertain (random: a seeded uniform draw)."""
    proba = np.asarray(proba, dtype=float)
    if strategy == "margin":
        top = np.sort(proba, axis=1)[:, ::-1]
        return 1.0 - (top[:, 0] - top[:, 1])
    if strategy == "entropy":
        clipped = np.clip(proba, 1e-12, 1.0)
        return -(proba * np.log(clipped)).sum(axis=1)
    if strategy == "least_confidence":
        return 1.0 - proba.max(axis=1)
    if strategy == "random":
        return np.random.default_rng(seed).random(len(proba))
    raise UserError(one_of("--strategy", strategy, STRATEGIES))


def most_uncertain(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n highest scores, highest first (ties: the earlier row)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:n]


def diverse(scores: np.ndarray, features: np.ndarray, n: int, *, seed: int = 0) -> np.ndarray:
    """n positions: of the CANDIDATES_PER_PICK x n most uncertain rows, the most uncertain row of
    each of n k-means clusters (standardized features); empty clusters are filled by score."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.preprocessing import StandardScaler

    candidates = most_uncertain(scores, CANDIDATES_PER_PICK * n)
    if len(candidates) <= n:
        return candidates
    points = StandardScaler().fit_transform(np.asarray(features, dtype=float)[candidates])
    clusters = MiniBatchKMeans(n_clusters=n, random_state=seed, n_init=3, batch_size=1024).fit_predict(points)
    chosen: list[int] = []
    for cluster in np.unique(clusters):
        members = candidates[clusters == cluster]  # candidates are ordered by score, so the first is the best
        chosen.append(int(members[0]))
    for position in candidates:  # fewer non-empty clusters than n: top up by score
        if len(chosen) >= n:
            break
        if position not in chosen:
            chosen.append(int(position))
    return np.array(sorted(chosen, key=lambda i: -scores[i]), dtype=int)


def model_version(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def check_pool(
    pool: pd.DataFrame, *, model: TabularModel, n: int, labeled_ids: set[str], min_share: float = MIN_SHARE
) -> pd.DataFrame:
    """The pool's rows cleaned by the policy for incoming rows (reprotab/data/incoming.py; what it
    changed is logged per column), or one UserError per problem found."""
    schema = model.schema
    cleaned = clean_incoming(pool, schema, featurizer=model.plan, where="--pool", min_share=min_share)
    log_notes(cleaned.notes, where="--pool")
    rows = cleaned.frame
    if not schema.id_column:
        raise UserError(problem("--pool", "needs an id column to match labels back, but the model has none"))
    if schema.id_column not in pool.columns:
        raise UserError(problem("--pool", "lacks the id column", schema.id_column, "Add it to the pool table"))
    ids = rows[schema.id_column].astype(str)
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        raise UserError(problem("--pool", f"repeats ids in {schema.id_column}", duplicated[:5]))
    known = sorted(set(ids) & labeled_ids)
    if known:
        raise UserError(
            problem(
                "--pool",
                f"has {len(known)} rows already labeled in data.path or data/batches (by {schema.id_column})",
                known[:5],
                "Remove labeled rows from the pool",
            )
        )
    if n < 1 or n > len(rows):
        raise UserError(problem("--n", f"must be between 1 and the pool's {len(rows)} rows", n))
    return rows.reset_index(drop=True)


def build_queue(
    rows: pd.DataFrame,
    *,
    model: TabularModel,
    n: int,
    strategy: str,
    diversity: bool = False,
    seed: int = 0,
    version: str = "",
) -> pd.DataFrame:
    """The queue: the n chosen rows, ranked, with score, prediction, probability and an empty label."""
    if model.schema.task != "classification":
        raise UserError(problem("--model", "must be a classification model to rank by uncertainty", model.kind))
    proba = model.predict_proba(rows)
    scores = uncertainty(proba, strategy, seed=seed)
    chosen = diverse(scores, model.featurize(rows), n, seed=seed) if diversity else most_uncertain(scores, n)
    predicted = model.class_indices(proba[chosen])
    schema = model.schema
    queue = pd.DataFrame(
        {
            schema.id_column: rows[schema.id_column].to_numpy()[chosen],
            "rank": np.arange(1, len(chosen) + 1),
            "strategy": strategy + ("+diversity" if diversity else ""),
            "score": np.round(scores[chosen], 6),
            "prediction": model.classes[predicted],
            "probability": np.round(proba[chosen, predicted], 6),
            "model_version": version,
        }
    )
    features = rows.iloc[chosen][list(schema.features)].reset_index(drop=True)
    return pd.concat([queue, features, pd.DataFrame({"label": [""] * len(chosen)})], axis=1)


def label_studio_tasks(queue: pd.DataFrame) -> list[dict[str, Any]]:
    """A Label Studio import: one {"data": {...}} task per queued row (missing values as null)."""
    records = queue.drop(columns=["label"]).to_dict(orient="records")
    clean = [{k: _json_value(v) for k, v in r.items()} for r in records]
    return [{"data": record} for record in clean]


def _json_value(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return None if value is pd.NA else value


def labeled_ids(path: str | Path, id_column: str, batches: Path = Path(paths.BATCHES)) -> set[str]:
    """Ids already labeled: the table at data.path and every table in data/batches."""
    files = [Path(path)]
    if batches.is_dir():
        files += sorted(p for p in batches.iterdir() if p.suffix.lower() in READERS)
    found: set[str] = set()
    for file in files:
        table = read_table(file, where="data.path" if file == Path(path) else str(file))
        if id_column in table.columns:
            found |= set(table[id_column].astype(str))
    return found


@stage_main("query", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab query", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="CSV or Parquet rows without labels")
    parser.add_argument("--n", type=int, default=200, help="rows to queue (default 200)")
    parser.add_argument("--strategy", default="margin", help=f"one of {', '.join(STRATEGIES)} (default margin)")
    parser.add_argument("--diversity", action="store_true", help="avoid near-duplicates (k-means on candidates)")
    parser.add_argument("--model", default=paths.MODEL)
    parser.add_argument("--out", default="labeling/queue.csv")
    parser.add_argument("--label-studio", action="store_true", help="also write <out>.json for Label Studio")
    parser.add_argument("--seed", type=int, default=None, help="default: params.yaml seed")
    args = parser.parse_args(argv)
    if args.strategy not in STRATEGIES:
        raise UserError(one_of("--strategy", args.strategy, STRATEGIES))
    params = load_params()
    model = load(args.model, where="--model")
    if model.schema.task != "classification":
        raise UserError(problem("--model", "must be a classification model to rank by uncertainty", model.kind))
    known = labeled_ids(params.data.path, model.schema.id_column) if model.schema.id_column else set()
    pool, min_share = read_table(args.pool, where="--pool"), params.prepare.text_to_number_min_share
    rows = check_pool(pool, model=model, n=args.n, labeled_ids=known, min_share=min_share)
    queue = build_queue(
        rows,
        model=model,
        n=args.n,
        strategy=args.strategy,
        diversity=args.diversity,
        seed=params.seed if args.seed is None else args.seed,
        version=model_version(args.model),
    )
    out = Path(args.out)
    with atomic_path(out) as tmp:
        queue.to_csv(tmp, index=False)
    if args.label_studio:
        with atomic_path(out.with_suffix(".json")) as tmp:
            tmp.write_text(json.dumps(label_studio_tasks(queue), indent=1, default=str) + "\n")
    print(queue.head(10)[[model.schema.id_column, "rank", "score", "prediction", "probability"]].to_string(index=False))
    log.info("queued %d of %d pool rows by %s in %s", len(queue), len(rows), queue["strategy"].iloc[0], out)
