"""A data profile of the raw table: what each column holds, and the problems worth a look first.

The core of the profile stage, without file IO. Per column: kind, missing share, distinct
count, top values (text, booleans) or range (numbers, dates; ±inf counted apart as `infinite`). Flags:
- target_leak: the column alone predicts the target almost perfectly (reprotab/data/leaks.py);
- id_like: unique per row (integers or text), or integers in strictly increasing/decreasing order;
- constant: a single value (empty columns are flagged `empty`);
- numbers_as_text: text that parses as numbers (prepare converts these, with the same rule);
plus duplicate rows (ignoring the id column) and the class balance with the sampler that
`sampler: auto` would choose for it (reprotab/train/sampling.py).

Big tables are sampled, seeded: per-column statistics on at most `STATS_ROWS` rows, the leak
check on at most `LEAK_ROWS`; row counts, duplicates, class balance and the order check use
every row. The profile says which numbers come from a sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.leaks import LEAK_SCORE, leak_scores
from reprotab.data.prepare import text_to_numbers
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.params.sections import DataParams, SamplingParams
from reprotab.train.sampling import resolve_sampler

STATS_ROWS = 100_000
LEAK_ROWS = 20_000
TOP_VALUES = 5
PROBE_ROWS = 2_000
MIN_ID_ROWS = 20  # a column unique over fewer rows than this is not called an ID
FLAG_TEXT = {
    "target_leak": "predicts the target almost perfectly on its own: check that it is known before the outcome",
    "id_like": "unique per row or ordered like a row number: an identifier, not a feature (set data.id_column)",
    "constant": "a single value: carries no information (prepare drops it)",
    "empty": "no values at all (prepare drops it)",
    "numbers_as_text": "numbers stored as text (prepare converts them; check the values that do not parse)",
}


def sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """At most `rows` rows of `frame`, drawn with `seed` (the frame itself when it is small)."""
    return frame if len(frame) <= rows else frame.sample(rows, random_state=seed)


def profile_table(
    frame: pd.DataFrame,
    *,
    data: DataParams,
    task: str,
    sampling: SamplingParams,
    seed: int,
    text_min_share: float,
    stats_rows: int = STATS_ROWS,
    leak_rows: int = LEAK_ROWS,
) -> dict[str, Any]:
    """The profile as a JSON-ready dict (see the module docstring)."""
    if data.target not in frame.columns:
        found = [str(c) for c in frame.columns]
        raise UserError(
            problem("data.target", "column not found", data.target, f"Columns: {', '.join(found)}")
            + did_you_mean(data.target, found)
        )
    stats = sample(frame, stats_rows, seed)
    as_text = _numbers_as_text(stats, min_share=text_min_share, skip={data.target}, seed=seed)
    columns = {name: _column(stats[name], frame[name]) for name in frame.columns}
    for name, entry in columns.items():
        entry["role"] = _role(name, data)
        entry["flags"] = _flags(name, entry, stats[name], frame[name], as_text)
    skip = {"empty", "constant", "id_like"}
    candidates = [
        n for n, e in columns.items() if e["role"] not in ("target", "id") and not skip.intersection(e["flags"])
    ]
    leak_sample = sample(stats, leak_rows, seed)
    leak_sample = leak_sample.assign(**{c: _as_numbers(leak_sample[c]) for c in as_text if c in candidates})
    scores = leak_scores(leak_sample, target=data.target, task=task, columns=candidates, seed=seed)
    for name, score in scores.items():
        columns[name]["leak_score"] = round(score, 4)
        if score >= LEAK_SCORE:
            columns[name]["flags"].append("target_leak")
    flags = {flag: [n for n, e in columns.items() if flag in e["flags"]] for flag in FLAG_TEXT}
    return {
        "rows": len(frame),
        "columns": len(frame.columns),
        "sampled": {"stats_rows": len(stats), "leak_rows": len(leak_sample)},
        "duplicate_rows": _duplicates(frame, data.id_column),
        "target": _target(frame, data=data, task=task, sampling=sampling),
        "leak_check": {"metric": "roc_auc" if task == "classification" else "r2", "flag_at": LEAK_SCORE},
        "flags": flags,
        "by_column": columns,
    }


def _numbers_as_text(frame: pd.DataFrame, *, min_share: float, skip: set[str], seed: int) -> list[str]:
    """Prepare's rule (`text_to_numbers`), run first on a small probe with a looser share so that
    parsing every text column of a big sample is not needed, then on the sample for the candidates."""
    _, maybe = text_to_numbers(sample(frame, PROBE_ROWS, seed), min_share=max(min_share - 0.1, 0.0), skip=skip)
    return text_to_numbers(frame[maybe], min_share=min_share, skip=skip)[1] if maybe else []


def _as_numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values.astype("string").str.strip().replace("", pd.NA), errors="coerce").astype(float)


def _column(values: pd.Series, full: pd.Series) -> dict[str, Any]:
    kind = _kind(values)
    present = values.dropna()
    entry: dict[str, Any] = {
        "kind": kind,
        "missing_share": round(float(full.isna().mean()), 4),
        "distinct": int(present.nunique()),
    }
    if kind == "numeric":  # ±inf is counted apart (prepare makes it missing) and kept out of the range
        finite = np.isfinite(present.to_numpy(dtype=float))
        if not finite.all():
            entry["infinite"] = int((~finite).sum())
            present = present[finite]
    if present.empty:
        return entry
    if kind in ("numeric", "datetime"):
        entry["range"] = {"min": _plain(present.min()), "max": _plain(present.max())}
        if kind == "numeric":
            entry["range"] |= {"mean": _plain(present.mean()), "median": _plain(present.median())}
    else:
        shares = present.astype(str).value_counts(normalize=True).head(TOP_VALUES)
        entry["top"] = [{"value": value, "share": round(float(share), 4)} for value, share in shares.items()]
    return entry


def _kind(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    return "text"


def _role(name: str, data: DataParams) -> str:
    if name == data.target:
        return "target"
    if name == data.id_column:
        return "id"
    return "dropped" if name in data.drop_columns else "feature"


def _flags(name: str, entry: dict[str, Any], values: pd.Series, full: pd.Series, as_text: list[str]) -> list[str]:
    if entry["role"] == "target":
        return []
    if entry["distinct"] == 0:
        return ["empty"]
    if entry["distinct"] == 1:
        return ["constant"]
    flags = ["numbers_as_text"] * (name in as_text)
    if entry["role"] != "id" and _id_like(values, full):
        flags.append("id_like")
    return flags


def _id_like(values: pd.Series, full: pd.Series) -> bool:
    """Integers or text unique per row (in the sample), or integers in strict order over the whole table."""
    integer = pd.api.types.is_integer_dtype(full) and not pd.api.types.is_bool_dtype(full)
    if not integer and _kind(values) != "text":
        return False
    present = values.dropna()
    if len(present) >= MIN_ID_ROWS and present.nunique() == len(present):
        return True
    ordered = integer and len(full) >= MIN_ID_ROWS and bool(full.notna().all())
    return ordered and bool(full.is_monotonic_increasing or full.is_monotonic_decreasing) and bool(full.is_unique)


def _duplicates(frame: pd.DataFrame, id_column: str | None) -> dict[str, Any]:
    columns = [c for c in frame.columns if c != id_column]
    hashes = pd.util.hash_pandas_object(frame[columns], index=False)
    count = int(hashes.duplicated().sum())
    return {"count": count, "share": round(count / len(frame), 4), "ignoring": id_column}


def _target(frame: pd.DataFrame, *, data: DataParams, task: str, sampling: SamplingParams) -> dict[str, Any]:
    if data.target not in frame.columns:
        return {"column": data.target, "missing": True}
    values = frame[data.target].dropna()
    if task == "regression" or values.empty:
        return {"column": data.target, "task": task}
    counts = values.value_counts()
    codes = np.repeat(np.arange(len(counts)), counts.to_numpy())  # same class sizes, cheap to count again
    decision = resolve_sampler(sampler="auto", task=task, y=codes, config=sampling)
    return {
        "column": data.target,
        "task": task,
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "class_share": {str(k): round(float(v) / len(values), 4) for k, v in counts.items()},
        "imbalance_ratio": round(decision.imbalance_ratio, 3),
        "sampler_auto": decision.sampler,
        "sampler_auto_reason": decision.reason,
    }


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy numbers become Python numbers, timestamps ISO text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6)
    return value.isoformat() if hasattr(value, "isoformat") else value
