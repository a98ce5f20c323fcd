"""Reading input tables and writing every output atomically (temp file + rename), so a killed
stage never leaves a half-written file behind and a failed one never replaces a good one."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from reprotab.errors import UserError, problem

_UMASK = os.umask(0)
os.umask(_UMASK)


def release_arrow_memory() -> None:
    """Give back what Arrow's allocator kept after reading or writing Parquet: it holds freed
    buffers (decompressed pages, converted tables) for reuse, so a stage that has read a table
    would otherwise hold about twice its size for the rest of its run."""
    import pyarrow

    pyarrow.default_memory_pool().release_unused()


def read_parquet(path: str | Path, *, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file as a frame (only `columns`, when given), Arrow's leftovers released."""
    frame = pd.read_parquet(path, columns=columns)
    release_arrow_memory()
    return frame


READERS = {".csv": pd.read_csv, ".parquet": read_parquet, ".pq": read_parquet}
CSV_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")  # what pandas decompresses by the file name
DELIMITERS = (",", ";", "\t", "|")  # in this order when two are equally frequent in the header line
FORMATS_TEXT = ".csv (or compressed: .csv.gz .csv.bz2 .csv.zip .csv.xz .csv.zst), .parquet or .pq"


def table_format(path: str | Path) -> str | None:
    """'csv' for .csv and compressed CSV (.csv.gz, ...), 'parquet' for .parquet and .pq, else None."""
    suffixes = [s.lower() for s in Path(path).suffixes[-2:]]
    if suffixes[-1:] in ([".parquet"], [".pq"]):
        return "parquet"
    if suffixes[-1:] == [".csv"] or (suffixes[:1] == [".csv"] and suffixes[-1] in CSV_COMPRESSIONS):
        return "csv"
    return None


def detect_delimiter(header: str) -> str:
    """The delimiter of a CSV from its header line: the most frequent of `DELIMITERS` outside
    double quotes (ties: the first in `DELIMITERS`), a comma when none occurs (one column)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else ","


def _first_line(path: Path) -> bytes:
    """The first line of a CSV file's text, decompressed as pandas would by the file name."""
    import bz2
    import gzip
    import lzma
    import zipfile

    suffix = path.suffix.lower()
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive, archive.open(archive.namelist()[0]) as handle:
            return handle.readline()
    if suffix == ".zst":
        import zstandard  # pandas needs it for .zst as well

        with zstandard.open(path, "rb") as handle:
            return handle.readline()
    # gzip, bz2 and lzma each open their own file class (none is a typing.IO); each has readline()
    openers: dict[str, Callable[[Path, Literal["rb"]], Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
    opener = openers.get(suffix, open)
    with opener(path, "rb") as handle:
        return handle.readline()


def _not_utf8(where: str, path: Path, exc: UnicodeDecodeError) -> UserError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return UserError(
        problem(
            where,
            f"is not UTF-8 text (byte 0x{byte} cannot be decoded; Excel and older exports often write latin-1 "
            "or Windows-1252)",
            str(path),
            f"Re-save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 '{path}' > utf8.csv` (cp1252 for Windows "
            "exports), and point at that file",
        )
    )


def read_csv(path: Path, *, where: str) -> pd.DataFrame:
    """A CSV file (compressed or not) in UTF-8, its delimiter detected from the header line
    (`detect_delimiter`). A file in another encoding is a UserError that says how to convert it:
    guessing an encoding could silently change the text."""
    try:
        header = _first_line(path).decode("utf-8-sig")
        return pd.read_csv(path, sep=detect_delimiter(header))
    except UnicodeDecodeError as exc:
        raise _not_utf8(where, path, exc) from None


def read_table(path: str | Path, *, where: str = "data.path") -> pd.DataFrame:
    """Read a CSV or Parquet table; a missing, empty or unreadable file is a `UserError`."""
    path = Path(path)
    kind = table_format(path)
    if kind is None:
        raise UserError(problem(where, f"must be a {FORMATS_TEXT} file", str(path)))
    if not path.is_file():
        raise UserError(
            problem(where, "file not found", str(path), f"Point {where} at an existing CSV or Parquet file")
        )
    if path.stat().st_size == 0:
        raise UserError(problem(where, "file is empty", str(path)))
    try:
        frame = read_csv(path, where=where) if kind == "csv" else read_parquet(path)
    except UserError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for a bad file
        raise UserError(problem(where, f"cannot be read as {kind} ({exc})", str(path))) from exc
    if frame.empty:
        raise UserError(problem(where, "has no rows", str(path)))
    return frame


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    release_arrow_memory()


def strict_json(value: Any) -> Any:
    """`value` with every non-finite float (NaN, ±inf, numpy's too) as None, numpy scalars and
    arrays as Python ones: what strict JSON can hold (a bare NaN is not JSON)."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalars and arrays
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(data: Any, path: str | Path) -> None:
    """Strict JSON (non-finite numbers as null, see `strict_json`), written atomically."""
    text = json.dumps(strict_json(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _digest(path: str | Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return _digest(path, "sha256")


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a frame (values, column names and order), stable across runs."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def file_md5(path: str | Path) -> str:
    """The file's md5, as DVC records it in dvc.lock."""
    return _digest(path, "md5")


@contextmanager
def fresh_dir(path: Path) -> Iterator[Path]:
    """An empty directory beside `path` that replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        tmp.chmod(path.parent.stat().st_mode & 0o777)
        shutil.rmtree(path, ignore_errors=True)  # never half-written: the old one or none, then the new
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
