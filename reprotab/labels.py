"""Bring labels from a labeling queue back as a new batch of labeled data.

    reprotab labels import FILE [--queue labeling/queue.csv] [--model models/model.joblib]
                                [--batches data/batches] [--test data/prepared/test.parquet]

FILE is the queue CSV (or Parquet) with its `label` column filled in, or a Label Studio JSON
export of the tasks `reprotab query --label-studio` wrote (the first choice of each task's last
annotation). Rows with an empty label are skipped (label them later). Everything is checked
before anything is written, and every problem is reported at once: ids must be in the queue,
appear once, not be in the test split (data/prepared/test.parquet: its rows only ever measure)
and not be labeled already; labels must be classes of the model (a new class needs rows in the
data and a retrain, not a queue). The accepted rows are written atomically as
`data/batches/labels-<UTC timestamp>.parquet` with the raw table's columns (data.path): the
feature values as queued, the label as the target, missing for columns the queue lacks.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.active_learning import labeled_ids
from reprotab.data import read_table, write_table
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.params import load_params
from reprotab.runner import stage_main
from reprotab.served import load

LABEL = "label"
log = logging.getLogger(__name__)


def read_labels(path: str | Path, *, id_column: str) -> pd.DataFrame:
    """The returned labels as a frame with the id column and `label` (CSV, Parquet or Label Studio JSON)."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return read_table(path, where="labels file")
    try:
        tasks = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(problem("labels file", f"cannot be read as Label Studio JSON ({exc})", str(path))) from None
    rows = []
    for task in tasks if isinstance(tasks, list) else []:
        data, label = task.get("data", {}), None
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        for result in done[-1].get("result", []) if done else []:
            choices = result.get("value", {}).get("choices")
            if choices:
                label = choices[0]
                break
        rows.append({id_column: data.get(id_column), LABEL: label})
    if not rows:
        raise UserError(problem("labels file", "holds no Label Studio tasks", str(path)))
    return pd.DataFrame(rows)


def validate_labels(
    labels: pd.DataFrame,
    *,
    queue: pd.DataFrame,
    classes: tuple[Any, ...],
    id_column: str,
    target: str,
    test_ids: set[str],
    known_ids: set[str],
    raw_columns: pd.Series,
) -> pd.DataFrame:
    """The batch to append (raw table columns, `raw_columns`: name → dtype), or a UserError listing
    every problem. `known_ids` are ids already labeled (data.path and earlier batches)."""
    missing = [c for c in (id_column, LABEL) if c not in labels.columns]
    if missing:
        raise UserError(
            "\n".join(
                problem("labels file", "lacks a column", c, "Return the queue file with its label column filled in")
                + did_you_mean(c, map(str, labels.columns))
                for c in missing
            )
        )
    text = labels[LABEL].astype("string").str.strip()
    filled = labels[text.notna() & (text != "")].assign(**{LABEL: text})
    if filled.empty:
        raise UserError(problem("labels file", "has no filled-in label", f"{len(labels)} rows"))
    ids = filled[id_column].astype(str)
    queued = set(queue[id_column].astype(str))
    by_name = {str(c): c for c in classes}
    checks = [
        (sorted(set(ids[ids.duplicated()])), "repeats ids (one label per row)", ""),
        (sorted(set(ids) - queued), "has ids that are not in the queue", "Label only rows of the queue file"),
        (sorted(set(ids) & test_ids), "has ids of the test split (it only measures)", "Drop those rows"),
        (sorted(set(ids) & known_ids), "has ids already labeled in data.path or data/batches", "Drop those rows"),
    ]
    problems = [
        problem(f"labels file ({id_column})", rule, bad[:5] if len(bad) > 5 else bad, fix)
        for bad, rule, fix in checks
        if bad
    ]
    for value in sorted(set(filled[LABEL]) - set(by_name)):
        problems.append(
            problem(
                f"labels file ({LABEL})",
                f"must be one of the model's classes {list(by_name)}",
                value,
                "A new class needs rows in the data and a retrain; fix a typo here",
            )
            + did_you_mean(value, by_name)
        )
    if problems:
        raise UserError("\n".join(problems))
    rows = queue.assign(_key=queue[id_column].astype(str)).set_index("_key").loc[ids.to_list()]
    batch = pd.DataFrame(index=range(len(rows)))
    for column, dtype in raw_columns.items():
        if column == target:
            values = pd.Series([by_name[v] for v in filled[LABEL]])
        elif column in rows.columns:
            values = rows[column].reset_index(drop=True)
        else:
            values = pd.Series(np.nan, index=range(len(rows)))
        try:
            batch[column] = values.astype(dtype)
        except (TypeError, ValueError):
            batch[column] = values
    return batch


def batch_path(folder: str | Path, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(folder) / f"labels-{stamp}.parquet"


@stage_main("labels", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab labels", description="Import labels returned from a queue.")
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="validate labels and append them as a new data/batches file")
    imp.add_argument("file", help="the filled-in queue (CSV/Parquet) or a Label Studio JSON export")
    imp.add_argument("--queue", default="labeling/queue.csv")
    imp.add_argument("--model", default="models/model.joblib")
    imp.add_argument("--batches", default="data/batches")
    imp.add_argument("--test", default="data/prepared/test.parquet")
    args = parser.parse_args(argv)
    params = load_params()
    model = load(args.model, where="--model")
    schema = model.schema
    if schema.task != "classification" or not schema.id_column:
        raise UserError(problem("--model", "must be a classification model with an id column", model.kind))
    queue = read_table(args.queue, where="--queue")
    test_ids = set()
    if Path(args.test).is_file():
        test_ids = set(pd.read_parquet(args.test, columns=[schema.id_column])[schema.id_column].astype(str))
    else:
        log.warning("%s not found: cannot check labels against the test split (run dvc repro prepare)", args.test)
    raw = read_table(params.data.path)
    batch = validate_labels(
        read_labels(args.file, id_column=schema.id_column),
        queue=queue,
        classes=schema.classes,
        id_column=schema.id_column,
        target=schema.target,
        test_ids=test_ids,
        known_ids=labeled_ids(params.data.path, schema.id_column, Path(args.batches)),
        raw_columns=raw.dtypes,
    )
    out = batch_path(args.batches)
    if out.exists():
        raise UserError(problem("--batches", "already has a batch from this second", str(out), "Run it again"))
    write_table(batch, out)
    counts = batch[schema.target].astype(str).value_counts().to_dict()
    log.info("%d labeled rows appended as %s (%s)", len(batch), out, counts)
