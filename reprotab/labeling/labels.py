"""Bring labels from a labeling queue back as a new batch of labeled data; join live labels to the log.

    reprotab labels import FILE [--queue labeling/queue.csv] [--model models/model.zip]
                                [--batches data.batches.dir] [--test data/prepared/test.parquet]
    reprotab labels join [--log serve.log.dir] [--labels FILE] [--output reports/live/outcomes.parquet]

`join` pairs labels that arrive after the predictions (a file, and the service's feedback files)
with the rows the service answered (reprotab/monitoring/outcomes.py) and writes the table
(route, version, time, id, request_id, position, prediction, proba, label) atomically, with a
summary of what joined per route and version and what did not.

FILE is the queue CSV (or Parquet) with its `label` column filled in, or a Label Studio JSON
export of the tasks `reprotab query --label-studio` wrote (the first choice of each task's last
annotation). Rows with an empty label are skipped (label them later); a file with none filled in
is one error. Everything is checked before anything is written, and every problem is reported at
once: ids must be in the queue, appear once, not be in the test split (data/prepared/test.parquet:
its rows only ever measure) and not be labeled already; labels must be classes of the model (a new
class needs rows in the data and a retrain, not a queue).

The accepted rows are written atomically as `<batches>/<UTC time>-labels.parquet` (e.g.
`2026-11-23T193000Z-labels.parquet`) with the raw table's columns (data.path): the feature values
as queued, the label as the target, missing for columns the queue lacks. prepare orders batches
by file name (= arrival order), and these names sort among monthly `YYYY-MM` batches by date: an
import made during November sorts after `2026-10` and before `2026-11`, the month's file that
arrives when November is over. In a DVC repository the file is `dvc add`ed like any batch, and
`data.batches.combine: none` becomes `all` (as `reprotab retrain` does: with none the labels
would train nothing). The command ends by printing the files to commit and `dvc repro`.
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

from reprotab import paths
from reprotab.data.tables import atomic_path, read_table, write_table
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.labeling.active_learning import labeled_ids
from reprotab.model.served import load
from reprotab.monitoring.outcomes import Joined, gather
from reprotab.params.loader import Params, load_params
from reprotab.retrain.steps import StepFailed, dvc
from reprotab.retrain.summary import set_value
from reprotab.runner import stage_main
from reprotab.serving.prediction_log import SERVED, read_rows

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
    keep = (text.notna() & (text != "")).fillna(False).astype(bool)
    if not keep.any():  # checked before any selection: an empty frame would take a column's index
        raise UserError(
            problem(
                "labels file",
                f"has no label filled in (the {LABEL} column is empty in all {len(labels)} rows)",
                None,
                f"Fill the {LABEL} column of the queue file, or pass the Label Studio JSON export",
            )
        )
    filled = labels[keep.to_numpy()].copy()
    filled[LABEL] = text[keep.to_numpy()]
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
    """`<folder>/2026-11-23T193000Z-labels.parquet`: the date first, so name order is arrival order
    beside monthly `2026-11.parquet` batches ('-' sorts before '.': a month's file follows its days)."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    return Path(folder) / f"{stamp}-labels.parquet"


def version(out: Path, *, repo: Path, params: Params) -> list[str]:
    """`dvc add` the new batch and set data.batches.combine `none` to `all`; the files to commit.
    Outside a DVC repository nothing is versioned or edited (a warning says so). A failed `dvc add`
    removes the batch, so nothing is left half-done."""
    if not (repo / ".dvc").is_dir():
        log.warning("%s is not a DVC repository: %s is not versioned (run `dvc add` on it)", repo, out)
        return []
    try:
        dvc(repo, "add", str(out))
    except StepFailed as exc:
        out.unlink(missing_ok=True)
        fix = "Fix the cause below and import again"
        raise UserError(
            problem("labels import", "could not `dvc add` the batch, so it was removed", None, fix) + f"\n{exc}"
        ) from None
    files = [f"{out}.dvc"]
    if (out.parent / ".gitignore").is_file():
        files.append(str(out.parent / ".gitignore"))
    if params.data.batches.combine == "none":  # as `reprotab retrain` does: none would train nothing
        text = (repo / "params.yaml").read_text()
        with atomic_path(repo / "params.yaml") as tmp:
            tmp.write_text(set_value(text, "data.batches.combine", "all"))
        log.info("params.yaml: data.batches.combine: all (it was none: the labels would train nothing)")
        files.append("params.yaml")
    return files


def join_summary(joined: Joined, *, out: Path) -> str:
    """One screen: labelled rows per route and version, and the labels that could not be used."""
    counts = joined.counts
    per = joined.rows.groupby(["route", "version"], sort=True).size()
    order = sorted(per.items(), key=lambda item: (SERVED.index(item[0][0]), str(item[0][1])))
    lines = [
        f"{counts['joined']:,} labelled rows ({counts['labels']:,} labels, {counts['feedback_labels']:,} by feedback):",
        f"  {'route':<9} {'version':<16} {'rows':>7}",
        *(f"  {route:<9} {version:<16} {rows:>7,}" for (route, version), rows in order),
    ]
    notes = {
        "unmatched": "no served row has their id or request_id; not used",
        "empty_labels": "rows without a label; skipped",
        "duplicate_labels": "a row labelled again; the last label wins",
        "ids_served_more_than_once": "an id answered more than once; its latest answer is labelled",
    }
    lines += [f"{k.replace('_', ' ')}: {counts[k]:,} ({text})" for k, text in notes.items() if counts.get(k)]
    return "\n".join([*lines, f"written to {out}"])


def join_labels(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    directory = Path(args.log or params.serve.log.dir)
    rows = read_rows(directory, where="--log")
    joined = gather(rows, params=params, directory=directory, labels=args.labels)
    out = Path(args.output)
    write_table(joined.rows, out)
    print(join_summary(joined, out=out))


@stage_main("labels", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="reprotab labels", description="Import labels returned from a queue; join live labels to the log."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    join = sub.add_parser("join", help="join labels that arrived after the predictions to the prediction log")
    join.add_argument("--log", help="prediction log directory (default: params serve.log.dir)")
    join.add_argument("--labels", help="CSV/Parquet: `label` (or the target) and `id` or `request_id` (+ position)")
    join.add_argument("--output", default="reports/live/outcomes.parquet")
    join.add_argument("--params", default="params.yaml")
    imp = sub.add_parser("import", help="validate labels and append them as a new data/batches file")
    imp.add_argument("file", help="the filled-in queue (CSV/Parquet) or a Label Studio JSON export")
    imp.add_argument("--queue", default="labeling/queue.csv")
    imp.add_argument("--model", default=paths.MODEL)
    imp.add_argument("--batches", default=None, help="default: params.yaml data.batches.dir")
    imp.add_argument("--test", default=paths.TEST)
    args = parser.parse_args(argv)
    if args.action == "join":
        return join_labels(args)
    params = load_params()
    model = load(args.model, where="--model")
    schema = model.schema
    if schema.task != "classification" or not schema.id_column:
        raise UserError(problem("--model", "must be a classification model with an id column", model.kind))
    queue = read_table(args.queue, where="--queue")
    test_ids = set()
    if Path(args.test).exists():  # a file, or a folder of part files (a table prepared in partitions)
        test_ids = set(pd.read_parquet(args.test, columns=[schema.id_column])[schema.id_column].astype(str))
    else:
        log.warning("%s not found: cannot check labels against the test split (run dvc repro prepare)", args.test)
    raw = read_table(params.data.path)
    batches = Path(args.batches or params.data.batches.dir)
    batch = validate_labels(
        read_labels(args.file, id_column=schema.id_column),
        queue=queue,
        classes=schema.classes,
        id_column=schema.id_column,
        target=schema.target,
        test_ids=test_ids,
        known_ids=labeled_ids(params.data.path, schema.id_column, batches),
        raw_columns=raw.dtypes,
    )
    out = batch_path(batches)
    if out.exists():
        raise UserError(problem("--batches", "already has a batch from this second", str(out), "Run it again"))
    write_table(batch, out)
    counts = batch[schema.target].astype(str).value_counts().to_dict()
    log.info("%d labeled rows appended as %s (%s)", len(batch), out, counts)
    to_commit = version(out, repo=Path.cwd(), params=params)
    if to_commit:
        print(f"{len(batch)} labeled rows versioned as {out}. Next:")
        print(f"  git add {' '.join(to_commit)} && git commit -m 'Labels: {len(batch)} rows from {args.file}'")
        combine = "all" if "params.yaml" in to_commit else params.data.batches.combine
        print(f"  dvc repro    # prepare adds the batch (data.batches.combine: {combine}), the model trains on it")
