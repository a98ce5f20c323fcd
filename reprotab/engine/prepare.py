"""prepare for a table in partitions: one schema for all, each partition cleaned and split on its
own, and only partitions not seen before processed.

Two passes, both one task per partition (in this process, or on the cluster with engine dask):

1. *Survey*: each partition's column facts and classes (reprotab/engine/partitions.py). The schema
   is decided from all of them together, with the single-table prepare's rules: a text column
   whose present values are numbers (at `prepare.text_to_number_min_share`) is numeric, entirely
   empty and constant columns are dropped, the target must suit the task.
2. *Split*: each partition is conformed to the schema (numbers as float64, categories as text, ±inf
   as missing, rows without a target dropped), split by the hash of each row's id, and written as
   part files of at most `dask.partition_rows` rows under data/prepared/<split>.parquet/.

The manifest (data/prepared/manifest.json, inside prepare's DVC output) records each partition's
content hash, facts and part files under a key of everything that shapes them (the settings, the
schema, this code). A partition whose hash and key are unchanged is reused, not read: adding a day
costs that day's rows. A change of key (a new class, an edited setting) processes all of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.prepare import MAX_CLASSES, SPLITS, select_columns
from reprotab.data.tables import read_json, read_table, write_json, write_table
from reprotab.engine.cluster import run_all
from reprotab.engine.partitions import (
    Partition,
    column_facts,
    folder_digest,
    list_partitions,
    row_hashes,
    split_codes,
)
from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema, label_text, positive_class_of

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What every partition is conformed to: the schema, how its target is stored, the split."""

    schema: Schema
    columns: tuple[str, ...]  # the reference partition's columns, data.drop_columns removed
    target_kind: str  # bool | number | text (classification); number (regression)
    seed: int
    test_size: float
    validation_size: float
    partition_rows: int


def survey(partition: Partition, target: str) -> dict[str, Any]:
    """Pass 1 for one partition: its columns, their facts and the target's labels (as text)."""
    frame = read_table(partition.path, where=f"data.path {partition.name}")
    facts = column_facts(frame)
    labels: dict[str, int] = {}
    if target in frame.columns:
        values = frame[target][frame[target].notna()]
        labels = {str(k): int(v) for k, v in _label_texts(values).value_counts().items()}
    return {"columns": [str(c) for c in frame.columns], "rows": len(frame), "facts": facts, "labels": labels}


def _label_texts(values: pd.Series) -> pd.Series:
    codes, levels = pd.factorize(values)
    texts = np.array([label_text(v) for v in levels], dtype=object)
    return pd.Series(texts[codes], index=values.index, dtype=object)


def decide(surveys: list[dict[str, Any]], names: list[str], params: Any) -> tuple[Plan, dict[str, Any]]:
    """The plan (the schema included) for every partition, from every partition's survey; and the
    cleaning summary. `names` name the partitions in messages; the first is the reference for columns."""
    data, prepare = params.data, params.prepare
    reference = surveys[0]["columns"]
    select_columns(pd.DataFrame(columns=reference), data=data)  # the named columns exist (one message)
    lacking = [
        problem(f"data.path {name}", "lacks columns of the first partition", ", ".join(missing))
        for name, found in zip(names, surveys, strict=True)
        if (missing := [c for c in reference if c not in found["columns"]])
    ]
    if lacking:
        raise UserError("\n".join(lacking))
    keep = {data.target, *([data.id_column] if data.id_column else [])}
    candidates = [c for c in reference if c not in keep and c not in data.drop_columns]
    numeric, categorical, converted, empty, constant = [], [], [], [], []
    for column in candidates:
        facts = [s["facts"][column] for s in surveys]
        present = sum(f["present"] for f in facts)
        values = {v for f in facts for v in f["values"]}
        if present == 0:
            empty.append(column)
        elif len(values) == 1 and not sum(f["missing"] for f in facts):
            constant.append(column)
        elif column in data.categorical_columns:
            categorical.append(column)
        elif all(f["number"] for f in facts):
            numeric.append(column)
        else:
            texts = [f for f in facts if not f["number"]]
            counted = present - sum(f["blank"] for f in texts)
            numbers = sum(f["present"] for f in facts if f["number"]) + sum(f["numbers"] for f in texts)
            share_ok = counted > 0 and numbers / counted >= prepare.text_to_number_min_share
            (numeric if share_ok else categorical).append(column)
            if share_ok:
                converted.append(column)
    target_facts = [s["facts"][data.target] for s in surveys]
    rows_without_target = sum(f["missing"] for f in target_facts)
    if params.task == "classification":
        kind = _label_kind(target_facts, surveys)
        counts: dict[str, int] = {}
        for s in surveys:
            for label, count in s["labels"].items():
                counts[label] = counts.get(label, 0) + count
        _check_classes(counts, target=data.target)
        classes = tuple(sorted((_label_value(t, kind) for t in counts), key=_class_order))
        positive = positive_class_of(pd.Series(counts), classes, data.positive_class)
    else:
        kind, classes, positive = "number", (), None
        if not all(f["number"] for f in target_facts):
            raise UserError(problem(f"data.target '{data.target}'", "must be numeric for task regression"))
        if sum(f["present"] for f in target_facts) < 10:
            raise UserError(problem(f"data.target '{data.target}'", "needs at least 10 rows with a value"))
    if not numeric and not categorical:
        raise UserError(problem("data", "no feature columns left after dropping ids, empty and constant columns"))
    schema = Schema(
        task=params.task,
        target=data.target,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        id_column=data.id_column,
        classes=classes,
        positive_class=positive,
        ignored=(*data.drop_columns, *empty, *constant),
    )
    plan = Plan(
        schema=schema,
        columns=tuple(c for c in reference if c not in data.drop_columns),
        target_kind=kind,
        seed=params.seed,
        test_size=prepare.test_size,
        validation_size=prepare.validation_size,
        partition_rows=params.dask.partition_rows,
    )
    cleaning = {
        "text_to_number": converted,
        "dropped_empty": empty,
        "dropped_constant": constant,
        "rows_without_target": rows_without_target,
    }
    return plan, cleaning


def _label_kind(facts: list[dict[str, Any]], surveys: list[dict[str, Any]]) -> str:
    if all(f["number"] for f in facts):
        texts = {t for s in surveys for t in s["labels"]}
        return "bool" if texts <= {"True", "False"} else "number"
    return "text"


def _label_value(text: str, kind: str) -> Any:
    if kind == "bool":
        return text == "True"
    if kind == "number":
        number = float(text)
        return int(number) if number.is_integer() else number
    return text


def _class_order(value: Any) -> tuple[int, Any]:
    return (0, value) if not isinstance(value, str) else (1, value)


def _check_classes(counts: Mapping[str, int], *, target: str) -> None:
    where = f"data.target '{target}'"
    if len(counts) < 2:
        fix = "Check the target column or the data files"
        raise UserError(problem(where, "must have at least two classes for task classification", list(counts), fix))
    if len(counts) > MAX_CLASSES:
        fix = "Set task: regression for a numeric quantity"
        raise UserError(problem(where, f"has more than {MAX_CLASSES} classes", len(counts), fix))
    rare = {k: v for k, v in counts.items() if v < 3}
    if rare:
        raise UserError(
            problem(where, "needs at least 3 rows of every class to split", rare, "Remove or merge the rarest classes")
        )


def conform(frame: pd.DataFrame, plan: Plan) -> tuple[pd.DataFrame, dict[str, int]]:
    """One partition in the schema's columns and storage; the infinities made missing, per column."""
    schema = plan.schema
    frame = frame[frame[schema.target].notna()].reset_index(drop=True)
    out: dict[str, Any] = {}
    infinite: dict[str, int] = {}
    if schema.id_column:
        out[schema.id_column] = _as_text(frame[schema.id_column])
    for column in schema.numeric:
        numbers = _as_numbers(frame[column])
        inf = np.isinf(numbers)
        if inf.any():
            infinite[column] = int(inf.sum())
            numbers[inf] = np.nan
        out[column] = numbers
    for column in schema.categorical:
        out[column] = _as_text(frame[column])
    target = frame[schema.target]
    if schema.task == "regression":
        out[schema.target] = _as_numbers(target)
    else:  # each distinct label converted once
        codes, levels = pd.factorize(target)
        labels = np.asarray([_label_value(label_text(v), plan.target_kind) for v in levels])
        out[schema.target] = pd.Series(labels[codes], dtype="string") if plan.target_kind == "text" else labels[codes]
    return pd.DataFrame(out, index=frame.index), infinite


def _as_numbers(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    text = values.astype("object").astype("string").str.strip()
    return pd.to_numeric(text, errors="coerce").astype(np.float64).to_numpy(na_value=np.nan)


def _as_text(values: pd.Series) -> pd.Series:
    """Values as the featurizer reads a category (str of the value); missing stays missing."""
    present = values.notna().to_numpy()
    text = np.full(len(values), None, dtype=object)
    text[present] = values[present].astype("object").astype(str).to_numpy()
    return pd.Series(text, index=values.index, dtype="string")


def split_partition(partition: Partition, plan: Plan, out: Path) -> dict[str, Any]:
    """Pass 2 for one partition: conformed, split, written as part files; what it wrote."""
    frame = read_table(partition.path, where=f"data.path {partition.name}")
    rows = len(frame)
    frame, infinite = conform(frame[list(plan.columns)], plan)
    codes = split_codes(
        row_hashes(frame, id_column=plan.schema.id_column, seed=plan.seed),
        test_size=plan.test_size,
        validation_size=plan.validation_size,
    )
    outputs: dict[str, list[str]] = {}
    stats: dict[str, Any] = {}
    for split, code in zip(SPLITS, range(3), strict=True):
        part = frame[codes == code].reset_index(drop=True)
        files = []
        for k, start in enumerate(range(0, len(part), plan.partition_rows)):
            name = f"part-{partition.sha256[:16]}-{k:04d}.parquet"
            write_table(part.iloc[start : start + plan.partition_rows], out / f"{split}.parquet" / name)
            files.append(name)
        outputs[split] = files
        stats[split] = _target_stats(part[plan.schema.target], plan.schema.task)
    return {"rows": rows, "outputs": outputs, "splits": stats, "infinite": infinite}


def _target_stats(values: pd.Series, task: str) -> dict[str, Any]:
    if task == "classification":
        return {"rows": len(values), "classes": {str(k): int(v) for k, v in values.value_counts().items()}}
    return {"rows": len(values), "sum": float(values.sum())}


def settings_key(plan: Plan) -> str:
    """Everything that shapes a partition's part files: the plan, the schema and this code."""
    code = b"".join(Path(m).read_bytes() for m in (__file__, Path(__file__).with_name("partitions.py")))
    text = json.dumps(asdict(plan), sort_keys=True, default=str)
    return hashlib.sha256(code + text.encode()).hexdigest()[:16]


def prepare_partitions(params: Any, out: Path, client: Any = None) -> tuple[Schema, dict[str, Any]]:
    """prepare over data.path's partitions into `out` (data/prepared), reusing what the manifest
    there already holds; returns the schema and the summary (written by the caller)."""
    data = params.data
    partitions = list_partitions(data.path)
    old = _read_manifest(out / MANIFEST)
    known = {entry["sha256"]: entry for entry in old.get("partitions", [])}
    fresh = [p for p in partitions if p.sha256 not in known]
    surveyed = dict(zip([p.sha256 for p in fresh], run_all(_SurveyTask(data.target), fresh, client), strict=True))
    surveys = [surveyed.get(p.sha256) or known[p.sha256]["survey"] for p in partitions]
    plan, cleaning = decide(surveys, [p.name for p in partitions], params)
    schema = plan.schema
    key = settings_key(plan)
    reusable = {
        sha: entry
        for sha, entry in known.items()
        if old.get("key") == key
        and all((out / f"{s}.parquet" / f).is_file() for s in SPLITS for f in entry["outputs"][s])
    }
    if not reusable:
        clear_outputs(out)
    todo = [p for p in partitions if p.sha256 not in reusable]
    done = dict(zip([p.sha256 for p in todo], run_all(_SplitTask(plan, out), todo, client), strict=True))
    entries = []
    for p, s in zip(partitions, surveys, strict=True):
        result = done.get(p.sha256) or reusable[p.sha256]
        entries.append(
            {
                "name": p.name,
                "sha256": p.sha256,
                "survey": s,
                **{k: result[k] for k in ("rows", "outputs", "splits", "infinite")},
            }
        )
    for split in SPLITS:  # every split folder exists and holds exactly the listed files
        folder = out / f"{split}.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        listed = {f for e in entries for f in e["outputs"][split]}
        if not listed:
            fix = "Add rows, or lower prepare.test_size / prepare.validation_size"
            raise UserError(problem("data.path", f"leaves no rows in the {split} split", data.path, fix))
        for stale in {p.name for p in folder.iterdir()} - listed:
            _remove(folder / stale)
    write_json({"format": MANIFEST_FORMAT, "key": key, "partitions": entries}, out / MANIFEST)
    summary = _summary(entries, schema, cleaning)
    summary["partitions"] = {"count": len(partitions), "processed": len(todo), "reused": len(partitions) - len(todo)}
    summary["data"] = {
        "reference": {"path": data.path, "rows": sum(e["rows"] for e in entries), "sha256": folder_digest(partitions)},
        "combine": "none",
        "batches": [],
        "batch_count": 0,
        "partitions": [{"name": e["name"], "rows": e["rows"], "sha256": e["sha256"]} for e in entries],
        "rows": sum(e["splits"][s]["rows"] for e in entries for s in SPLITS),
    }
    log.info(
        "%d partitions: %d processed, %d reused (unchanged); train/validation/test %s rows",
        len(partitions),
        len(todo),
        len(partitions) - len(todo),
        "/".join(str(summary[s]["rows"]) for s in SPLITS),
    )
    return schema, summary


class _SurveyTask:
    """Pass 1 with its settings: a picklable callable for the cluster."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, partition: Partition) -> dict[str, Any]:
        return survey(partition, self.target)


class _SplitTask:
    """Pass 2 with its settings: a picklable callable for the cluster."""

    def __init__(self, plan: Plan, out: Path) -> None:
        self.plan, self.out = plan, out

    def __call__(self, partition: Partition) -> dict[str, Any]:
        return split_partition(partition, self.plan, self.out)


def _summary(entries: list[dict[str, Any]], schema: Schema, cleaning: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for split in SPLITS:
        stats = [e["splits"][split] for e in entries]
        rows = sum(s["rows"] for s in stats)
        entry: dict[str, Any] = {"rows": rows}
        if schema.task == "classification":
            counts: dict[str, int] = {}
            for s in stats:
                for label, count in s["classes"].items():
                    counts[label] = counts.get(label, 0) + count
            entry["class_share"] = {k: round(v / rows, 4) for k, v in sorted(counts.items())} if rows else {}
        else:
            entry["target_mean"] = round(sum(s["sum"] for s in stats) / rows, 4) if rows else None
        summary[split] = entry
    infinite: dict[str, int] = {}
    for e in entries:
        for column, count in e["infinite"].items():
            infinite[column] = infinite.get(column, 0) + count
    summary["cleaning"] = {**cleaning, "infinite_to_missing": infinite, "duplicate_rows": None}
    return summary


def _outputs_exist(out: Path, entry: dict[str, Any]) -> bool:
    return all((out / f"{split}.parquet" / name).is_file() for split in SPLITS for name in entry["outputs"][split])


def _read_manifest(path: Path) -> dict[str, Any]:
    """The previous run's manifest, or nothing when absent or unreadable (everything is redone)."""
    try:
        manifest = read_json(path)
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else {}


def clear_partitioned(out: Path) -> None:
    """Remove what a folder-prepared run left in `out` (split folders, the manifest) before the
    single-table prepare writes its files there; its own files are replaced atomically."""
    for split in SPLITS:
        if (out / f"{split}.parquet").is_dir():
            _remove(out / f"{split}.parquet")
    _remove(out / MANIFEST)


def clear_outputs(out: Path) -> None:
    """Remove the split outputs of any earlier run (single files of the local prepare included)."""
    for split in SPLITS:
        _remove(out / f"{split}.parquet")
    _remove(out / MANIFEST)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
