"""A table kept as partitions: the files of a folder, each named by its content, and a split that
no partitioning can change.

`list_partitions` reads `data.path`: a folder of Parquet or CSV files (a hive layout such as
`date=2026-11-01/part-0.parquet` included, searched recursively, in path order) or one file, which
is one partition. Folder names are not read as columns: every column lives inside the files.
`split_codes` puts each row in train, validation or test by a seeded hash of its id (of the whole
row without an id column), so a row keeps its split however the table is cut, whichever partitions
are added, and on any worker. `column_facts` summarises one partition's columns for the schema
decision, cheap enough to keep in the manifest for every partition seen.

Each listing hashes every file, which would make a run that adds one day cost a read of every
day. `HASH_CACHE` (in DVC's own scratch folder, never versioned) keeps each file's digest with its
size, modification time and inode, as DVC's and git's caches do: a file whose three are unchanged
is not read again. A file modified in the last two seconds is never cached (its next write may
keep the same time stamp: git's "racy" case). The cache is used only inside a DVC repository.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.tables import FORMATS_TEXT, file_hash, read_table, table_format, write_json
from reprotab.errors import UserError, problem

SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class Partition:
    """One input file: `name` is its path inside data.path (the file's own name for a single file)."""

    name: str
    path: Path
    sha256: str


def list_partitions(path: str | Path, *, where: str = "data.path") -> list[Partition]:
    """Every table file of `path` in path order, each with its SHA-256; files and folders whose name
    starts with `.` or `_` (_SUCCESS, _common_metadata, .tmp files) are skipped, as Spark and Arrow do."""
    path = Path(path)
    if path.is_file():
        return [Partition(path.name, path, hashes([path])[0])]
    if not path.is_dir():
        raise UserError(problem(where, "file or folder not found", str(path), f"Point {where} at a table or a folder"))
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and table_format(p) and not _hidden(p.relative_to(path))),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise UserError(problem(where, f"folder holds no {FORMATS_TEXT} file", str(path)))
    return [
        Partition(p.relative_to(path).as_posix(), p, digest) for p, digest in zip(files, hashes(files), strict=True)
    ]


HASH_CACHE = Path(".dvc/tmp/reprotab-partition-hashes.json")
RACY_NS = 2_000_000_000  # a file modified this recently is hashed but not cached


def hashes(files: list[Path]) -> list[str]:
    """Each file's SHA-256: from `HASH_CACHE` when its size, mtime and inode are those recorded,
    else read (and recorded). Without a .dvc folder in the working directory, every file is read."""
    use = HASH_CACHE.parent.parent.is_dir()
    cache = _read_cache() if use else {}
    found, now, changed = [], time.time_ns(), False
    for file in files:
        stat = file.stat()
        key, stamp = str(file.resolve()), [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        entry = cache.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp:
            found.append(str(entry[3]))
            continue
        digest = file_hash(file)
        found.append(digest)
        if now - stat.st_mtime_ns > RACY_NS:
            cache[key], changed = [*stamp, digest], True
    if use and changed:
        kept = {k: v for k, v in cache.items() if Path(k).exists()}  # files gone leave the cache
        write_json(kept, HASH_CACHE)
    return found


def _read_cache() -> dict[str, Any]:
    try:
        found = json.loads(HASH_CACHE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def folder_digest(partitions: list[Partition]) -> str:
    """One SHA-256 for a folder: of its partitions' names and contents, in order."""
    digest = hashlib.sha256()
    for partition in partitions:
        digest.update(f"{partition.name}\0{partition.sha256}\n".encode())
    return digest.hexdigest()


def _hash_key(seed: int) -> str:
    return f"{seed:016d}"[-16:]  # pandas' hash takes a 16-character key


def row_hashes(frame: pd.DataFrame, *, id_column: str | None, seed: int) -> np.ndarray:
    """A seeded 64-bit hash per row: of the id as text (1 and "1" alike), or of every value."""
    if id_column:
        keys: pd.Series | pd.DataFrame = frame[id_column].astype("object").astype(str)
    else:
        keys = frame
    return pd.util.hash_pandas_object(keys, index=False, hash_key=_hash_key(seed)).to_numpy(dtype=np.uint64)


def split_codes(hashes: np.ndarray, *, test_size: float, validation_size: float) -> np.ndarray:
    """0 train, 1 validation, 2 test for each row hash: the hash as a uniform number in [0, 1)
    against the two shares."""
    uniform = (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.where(uniform < test_size, 2, np.where(uniform < test_size + validation_size, 1, 0)).astype(np.int8)


def sample_mask(hashes: np.ndarray, share: float) -> np.ndarray:
    """A share of rows chosen by a second look at their hash (its low bits, which the split does
    not use), so a sample of train is the same rows however the table is cut."""
    low = (hashes & np.uint64((1 << 11) - 1)).astype(np.float64) / float(1 << 11)
    return low < share


def column_facts(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per column: rows present, whether the values are numbers (or booleans), for text how many
    present values parse as numbers, and up to two distinct values as text (constant columns)."""
    facts: dict[str, dict[str, Any]] = {}
    for column in frame.columns:
        values = frame[column]
        present = values.notna()
        number = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        fact: dict[str, Any] = {"present": int(present.sum()), "missing": int((~present).sum()), "number": number}
        distinct = pd.unique(values[present].to_numpy())[:2] if fact["present"] else []
        fact["values"] = sorted(str(v) for v in distinct)
        if not number:
            codes, levels = pd.factorize(values.astype("object").astype("string"), use_na_sentinel=True)
            text = pd.Series(levels, dtype="string").str.strip().replace("", pd.NA)
            parsed = pd.to_numeric(text, errors="coerce").astype(float).to_numpy()
            counts = np.bincount(codes[codes >= 0], minlength=len(levels))
            fact["numbers"] = int(counts[~np.isnan(parsed)].sum())
            fact["blank"] = int(counts[text.isna().to_numpy()].sum())
        facts[str(column)] = fact
    return facts


def partition_rows(partition: Partition) -> int:
    """A partition's row count: from the Parquet footer, or by reading a CSV."""
    if table_format(partition.path) == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(partition.path).metadata.num_rows)
    return len(read_table(partition.path, where=f"data.path {partition.name}"))


def read_sample(path: str | Path, *, rows: int, seed: int, id_column: str | None) -> tuple[pd.DataFrame, int]:
    """About `rows` rows of a folder's partitions, the same rows however it is cut (a hashed
    sample), read one partition at a time; and the folder's row count."""
    partitions = list_partitions(path)
    total = sum(partition_rows(p) for p in partitions)
    share = min(1.0, rows / max(total, 1))
    parts = []
    for partition in partitions:
        frame = read_table(partition.path, where=f"data.path {partition.name}")
        usable = id_column if id_column in frame.columns else None
        parts.append(frame[sample_mask(row_hashes(frame, id_column=usable, seed=seed), share)])
    return pd.concat(parts, ignore_index=True), total


def read_split(
    path: str | Path, *, sample_rows: int, seed: int, id_column: str | None, where: str = "split"
) -> pd.DataFrame:
    """A prepared split for a stage that works in one process: a file whole, a folder of part files
    as a hashed sample of about `sample_rows` rows (the same rows however it is cut)."""
    if Path(path).is_dir():
        return read_sample(path, rows=sample_rows, seed=seed, id_column=id_column)[0]
    return read_table(path, where=where)
