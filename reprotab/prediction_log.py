"""The prediction log: every prediction the service makes, one JSON line per row.

Files: `<log dir>/predictions-YYYYMMDD-HHMMSS.jsonl` (UTC time the file was started; default
log dir `logs/predictions`). A new file starts when the current one passes `max_bytes` or when
the UTC day changes, so a day's predictions never share a file with another day's. Each line:

    {"time": "2026-11-23T19:30:01.123456+00:00",   ISO 8601, UTC, when the row was scored
     "request_id": "…",                            the client's request_id, else a generated uuid4
     "route": "champion" | "canary" | "shadow",    which model scored it (shadow: not returned)
     "version": "local:3f9c0a1b2c4d",              that model's version
     "features": {"tenure_months": 3, …},          the row as the client sent it (after validation)
     "prediction": true,                           the label, or a number for regression
     "proba": {"False": 0.8, "True": 0.2} | null}  class probabilities (keys are the classes as
                                                   text), null for regression

A shadowed request writes each row twice: route "champion" (the answer returned) and route
"shadow" (the challenger's, same request_id). The monitor reads these files; the format is
the contract between the two. Writes from many threads are serialized by one lock, and each
request's lines are written and flushed together.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

PREFIX, SUFFIX = "predictions-", ".jsonl"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024


def record(
    *,
    time: datetime,
    request_id: str,
    route: str,
    version: str,
    features: dict[str, Any],
    prediction: Any,
    proba: dict[str, float] | None,
) -> dict[str, Any]:
    """One line of the log (see the module docstring)."""
    return {
        "time": time.isoformat(),
        "request_id": request_id,
        "route": route,
        "version": version,
        "features": features,
        "prediction": prediction,
        "proba": proba,
    }


class PredictionLog:
    """Append-only JSONL files in `directory`, rotated by size and by UTC day; thread-safe."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory, self.max_bytes, self.clock = Path(directory), max_bytes, clock
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._day: str | None = None
        self._size = 0

    @property
    def path(self) -> Path | None:
        return Path(self._file.name) if self._file else None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        if not text:
            return
        data = text.encode("utf-8")
        with self._lock:
            now = self.clock()
            if self._file is None or self._size >= self.max_bytes or now.strftime("%Y%m%d") != self._day:
                self._open(now)
            assert self._file is not None
            self._file.write(text)
            self._file.flush()
            self._size += len(data)

    def _open(self, now: datetime) -> None:
        self.close_file()
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{PREFIX}{now.strftime('%Y%m%d-%H%M%S')}"
        path, n = self.directory / f"{stem}{SUFFIX}", 1
        while path.exists():  # two rotations in one second, or a restart: never append to another's file
            path, n = self.directory / f"{stem}-{n}{SUFFIX}", n + 1
        self._file = open(path, "x", encoding="utf-8")  # noqa: SIM115 (kept open across writes)
        self._day, self._size = now.strftime("%Y%m%d"), 0

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        with self._lock:
            self.close_file()


def files(directory: str | Path) -> list[Path]:
    """The log's files, oldest first."""
    return sorted(Path(directory).glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))


def read(directory: str | Path) -> list[dict[str, Any]]:
    """Every record in the log, in file order."""
    return [json.loads(line) for path in files(directory) for line in path.read_text().splitlines() if line]
