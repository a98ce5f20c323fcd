"""Preparing the raw table: check the named columns, clean lightly, split once.

The core of the prepare stage, without file IO. The split is made here and only here:
seeded, stratified for classification. Later stages fit on train, choose on validation, and
only evaluate touches test. Cleaning is deliberately light and always logged: numbers stored
as text become numbers, ±inf becomes missing, entirely empty and constant columns are dropped,
rows without a target are dropped, duplicates are reported (kept). One module past 300 lines:
checks, cleaning and split are one ordered procedure, each step reading the frame the one
before it left; rows that arrive later are cleaned by the same rules in reprotab/data/incoming.py.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from reprotab.errors import UserError, did_you_mean, problem
from reprotab.model.schema import Schema
from reprotab.params.sections import DataParams

SPLITS = ("train", "validation", "test")
BATCH_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_CLASSES = 50
log = logging.getLogger(__name__)


def select_columns(frame: pd.DataFrame, *, data: DataParams) -> pd.DataFrame:
    """Check that the named columns exist and drop the ones params say to drop."""
    columns = list(frame.columns)
    named = [("data.target", data.target)] + [("data.id_column", data.id_column)] * bool(data.id_column)
    named += [("data.drop_columns", c) for c in data.drop_columns]
    named += [("data.categorical_columns", c) for c in data.categorical_columns]
    missing = [
        problem(where, "column not found", name, f"Columns: {', '.join(map(str, columns))}")
        + did_you_mean(name, map(str, columns))
        for where, name in named
        if name not in frame.columns
    ]
    if missing:
        raise UserError("\n".join(missing))
    return frame.drop(columns=list(data.drop_columns))


def choose_batches(names: list[str], *, combine: str, window: int) -> list[str]:
    """The batch files prepare adds to the reference table, in file name order (= arrival order):
    none, all of them, or the last `window`."""
    ordered = sorted(n for n in names if n.lower().endswith(BATCH_SUFFIXES))
    if combine == "none":
        return []
    return ordered[-window:] if combine == "window" else ordered


def combine_batches(reference: pd.DataFrame, batches: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The reference table with the batches appended below it. A batch lacking a column of the
    reference is a UserError (with a suggestion); columns the reference lacks are dropped (logged)."""
    if not batches:
        return reference
    columns, problems = list(reference.columns), []
    for name, batch in batches.items():
        missing = [c for c in columns if c not in batch.columns]
        if missing:
            batch_columns = [str(c) for c in batch.columns]
            hints = "".join(did_you_mean(c, batch_columns) for c in missing)
            rule = "lacks columns of the reference table"
            problems.append(problem(f"batch {name}", rule, ", ".join(missing)) + hints)
        extra = [str(c) for c in batch.columns if c not in reference.columns]
        if extra:
            log.warning("batch %s: columns not in the reference table dropped: %s", name, ", ".join(extra))
    if problems:
        raise UserError("\n".join(problems))
    return pd.concat([reference, *(batch[columns] for batch in batches.values())], ignore_index=True)


def text_to_numbers(frame: pd.DataFrame, *, min_share: float, skip: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """Convert text columns whose non-blank values are (almost) all numbers; blanks become NaN.

    Each distinct text is parsed once and mapped back through its codes: a category column of a
    million rows holds a handful of values, and parsing every row was most of prepare's time. The
    codes are of the values as text, so values Python holds equal but writes differently (True and
    1, -0.0 and 0.0) stay apart, and unhashable ones (a list) are their text like any other."""
    numbers_of = {}
    for column in frame.columns:
        if column in skip or not _is_text(frame[column]):
            continue
        codes, distinct = pd.factorize(frame[column].astype("string"), use_na_sentinel=True)
        text = pd.Series(distinct, dtype="string").str.strip().replace("", pd.NA)
        parsed = pd.to_numeric(text, errors="coerce").astype(float).to_numpy()
        rows_per_value = np.bincount(codes[codes >= 0], minlength=len(distinct))
        present = int(rows_per_value[text.notna().to_numpy()].sum())
        if present and rows_per_value[~np.isnan(parsed)].sum() / present >= min_share:
            numbers_of[column] = pd.Series(np.where(codes >= 0, parsed[codes], np.nan), index=frame.index, name=column)
    if numbers_of:  # a shallow copy: only the converted columns are new, the rest is shared
        frame = frame.copy(deep=False)
        for column, numbers in numbers_of.items():
            frame[column] = numbers
    return frame, list(numbers_of)


def infinities_to_missing(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """±inf in numeric columns becomes missing (NaN), counted per column.

    An infinite value is never a measurement a model can learn from (most exports write it for
    a division by zero), and the imputer, the boosters and the samplers each fail on it
    differently; as missing it is imputed and flagged like any other gap."""
    counts = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_float_dtype(values):
            infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
            if infinite.any():
                counts[str(column)] = int(infinite.sum())
    if not counts:
        return frame, counts
    frame = frame.copy(deep=False)  # only the changed columns are replaced
    for column in counts:
        frame[column] = frame[column].replace([np.inf, -np.inf], np.nan)
    return frame, counts


def drop_useless(frame: pd.DataFrame, *, keep: set[str]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Drop columns that are entirely empty or hold a single value; they cannot inform a model."""
    empty = [c for c in frame.columns if c not in keep and frame[c].isna().all()]
    constant = [c for c in frame.columns if c not in keep and c not in empty and frame[c].nunique(dropna=False) == 1]
    return frame.drop(columns=empty + constant), empty, constant


def check_target(frame: pd.DataFrame, *, target: str, task: str) -> pd.DataFrame:
    """Drop rows without a target and check the target suits the task."""
    present = frame[target].notna()
    if not present.all():  # filtering copies every column, so only when some row goes
        frame = frame[present]
    frame = frame.reset_index(drop=True)
    values = frame[target]
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            raise UserError(
                problem(
                    f"data.target '{target}'",
                    "must be numeric for task regression",
                    f"{values.dtype} values such as {values.iloc[0]!r}",
                    "Choose a numeric target or set task: classification",
                )
            )
        if len(frame) < 10:
            raise UserError(problem(f"data.target '{target}'", "needs at least 10 rows with a value", len(frame)))
        return frame
    counts = values.value_counts()
    if len(counts) < 2:
        raise UserError(
            problem(
                f"data.target '{target}'",
                "must have at least two classes for task classification",
                f"only {counts.index.tolist()}",
                "Check the target column or the data file",
            )
        )
    if len(counts) > MAX_CLASSES:
        raise UserError(
            problem(
                f"data.target '{target}'",
                f"has more than {MAX_CLASSES} classes",
                len(counts),
                "Set task: regression for a numeric quantity",
            )
        )
    if counts.min() < 3:
        raise UserError(
            problem(
                f"data.target '{target}'",
                "needs at least 3 rows of every class to split",
                counts[counts < 3].to_dict(),
                "Remove or merge the rarest classes",
            )
        )
    return frame


def split(
    frame: pd.DataFrame,
    *,
    target: str,
    task: str,
    test_size: float,
    validation_size: float,
    seed: int,
    sources: np.ndarray | None = None,
) -> dict[str, pd.DataFrame]:
    """One seeded split into train / validation / test, stratified for classification.

    `sources` numbers each row's file (0 = data.path, 1.. = the batches). Each file is split on its
    own, so a row's split depends only on its own file, the seed and the sizes, never on which other
    batches are combined: the test rows of data.path stay test rows in every later month, which is
    what lets the gate judge every challenger on a frozen reference set no batch can leak into.
    """
    labels = frame[target].to_numpy() if task == "classification" else None
    if sources is None:
        sources = np.zeros(len(frame), dtype=int)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for source in np.unique(sources):
        block = np.flatnonzero(sources == source)
        for name, positions in zip(SPLITS, _split_block(block, labels, test_size, validation_size, seed), strict=True):
            parts[name].append(positions)
    return {name: frame.take(np.concatenate(found)).reset_index(drop=True) for name, found in parts.items()}


MIN_SPLIT_ROWS = 10  # a batch of fewer rows goes to train whole: a test share of it would be noise


def _split_block(
    positions: np.ndarray, labels: np.ndarray | None, test_size: float, validation_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train, validation and test positions of one file's rows; stratified when every class of the
    block can be (at least 2 rows each), else plain: a batch may hold one class."""
    empty = positions[:0]
    if len(positions) < MIN_SPLIT_ROWS:
        return positions, empty, empty

    def strata(part: np.ndarray) -> np.ndarray | None:
        if labels is None:
            return None
        _, counts = np.unique(labels[part].astype(str), return_counts=True)
        return labels[part] if len(counts) > 1 and counts.min() >= 2 else None

    # Positions are split, not the frame, so the rows are copied once (into their split).
    rest, test = train_test_split(positions, test_size=test_size, random_state=seed, stratify=strata(positions))
    train, validation = train_test_split(
        rest, test_size=validation_size / (1 - test_size), random_state=seed, stratify=strata(rest)
    )
    return train, validation, test


def summarize(splits: dict[str, pd.DataFrame], *, target: str, task: str) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, part in splits.items():
        entry: dict[str, Any] = {"rows": len(part)}
        if task == "classification":
            shares = part[target].value_counts(normalize=True).sort_index()
            entry["class_share"] = {str(k): round(float(v), 4) for k, v in shares.items()}
        else:
            entry["target_mean"] = round(float(part[target].mean()), 4)
        summary[name] = entry
    return summary


def prepare(
    frame: pd.DataFrame,
    *,
    task: str,
    seed: int,
    data: DataParams,
    test_size: float,
    validation_size: float,
    text_min_share: float,
    source_rows: list[int] | None = None,
) -> tuple[dict[str, pd.DataFrame], Schema, dict[str, Any]]:
    """The whole stage without IO: returns the splits, the schema and a summary. `source_rows`
    counts the rows of each file in the frame, data.path's first (see `split`); None: one file."""
    sources = np.repeat(np.arange(len(source_rows)), source_rows) if source_rows else np.zeros(len(frame), dtype=int)
    if len(sources) != len(frame):
        raise ValueError(f"source_rows add up to {len(sources)}, the frame has {len(frame)} rows")
    frame = select_columns(frame, data=data)
    keep = {data.target, *([data.id_column] if data.id_column else [])}
    frame, converted = text_to_numbers(frame, min_share=text_min_share, skip=keep | set(data.categorical_columns))
    frame, infinite = infinities_to_missing(frame)
    for column, count in infinite.items():
        log.warning("column %s: %d infinite values treated as missing", column, count)
    frame, empty, constant = drop_useless(frame, keep=keep)
    for what, columns in (
        ("stored as text, converted to numbers", converted),
        ("entirely empty, dropped", empty),
        ("constant, dropped", constant),
    ):
        if columns:
            log.warning("columns %s: %s", what, ", ".join(columns))
    duplicates = int(frame.duplicated(subset=[c for c in frame.columns if c != data.id_column]).sum())
    if duplicates:
        log.warning("%d duplicate rows (ignoring the id column); kept as they are", duplicates)
    rows_before = len(frame)
    sources = sources[frame[data.target].notna().to_numpy()]  # check_target drops these rows
    frame = check_target(frame, target=data.target, task=task)
    if len(frame) < rows_before:
        log.warning("%d rows without a target value dropped", rows_before - len(frame))
    schema = Schema.infer(
        frame,
        task=task,
        target=data.target,
        id_column=data.id_column,
        categorical=data.categorical_columns,
        positive_class=data.positive_class,
        ignored=(*data.drop_columns, *empty, *constant),
    )
    if not schema.features:
        raise UserError(problem("data", "no feature columns left after dropping ids, empty and constant columns"))
    splits = split(
        frame,
        target=data.target,
        task=task,
        test_size=test_size,
        validation_size=validation_size,
        seed=seed,
        sources=sources,
    )
    summary = summarize(splits, target=data.target, task=task)
    summary["cleaning"] = {
        "text_to_number": converted,
        "infinite_to_missing": infinite,
        "dropped_empty": empty,
        "dropped_constant": constant,
        "duplicate_rows": duplicates,
        "rows_without_target": rows_before - len(frame),
    }
    return splits, schema, summary


def prepare_with(
    frame: pd.DataFrame, params: Any, *, source_rows: list[int] | None = None
) -> tuple[dict[str, pd.DataFrame], Schema, dict[str, Any]]:
    """prepare() with the settings of params.yaml (the stage and the benchmarks split alike)."""
    return prepare(
        frame,
        task=params.task,
        seed=params.seed,
        data=params.data,
        test_size=params.prepare.test_size,
        validation_size=params.prepare.validation_size,
        text_min_share=params.prepare.text_to_number_min_share,
        source_rows=source_rows,
    )


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values) or values.dtype == object
