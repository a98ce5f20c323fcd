"""The prediction log: every prediction the service makes, one JSON line per row.

Files: `<log dir>/predictions-YYYYMMDD-HHMMSS.jsonl` (UTC time the file was started; default
log dir `logs/predictions`). A new file starts when the current one passes `max_bytes` or when
the UTC day changes, so a day's predictions never share a file with another day's. Each line:

    {"time": "2026-11-23T19:30:01.123456+00:00",   ISO 8601, UTC, when the row was scored
     "request_id": "…",                            the client's request_id, else a generated uuid4
     "route": "champion" | "canary" | "shadow",    which model scored it (shadow: not returned)
     "version": "local:3f9c0a1b2c4d",              that model's version
     "id": "C-1042" | null,                        the row's id column, when the client sent it
     "features": {"tenure_months": 3, …},          the row as the client sent it (after validation)
     "prediction": true,                           the label, or a number for regression
     "proba": {"False": 0.8, "True": 0.2} | null}  class probabilities (keys are the classes as
                                                   text), null for regression

A shadowed request writes each row twice: route "champion" (the answer returned) and route
"shadow" (the challenger's, same request_id). The monitor reads these files; the format is
the contract between the two. Writes from many threads are serialized by one lock, and each
request's lines are written and flushed together.

The reading side (`reprotab monitor --from-log`): `read_rows` reads every line, `select` keeps
the served rows (routes champion and canary: every row, not one per request) of a time window and
a model version with their shadow rows, and `compare_shadow` pairs each served row with its
shadow row (same request_id and position in the request) to say how often the two models agree.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
import pandas as pd

from reprotab.errors import UserError, problem

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
    row_id: Any = None,
) -> dict[str, Any]:
    """One line of the log (see the module docstring)."""
    return {
        "time": time.isoformat(),
        "request_id": request_id,
        "route": route,
        "version": version,
        "id": row_id,
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
        self._file: BinaryIO | None = None
        self._day: str | None = None
        self._size = 0

    @property
    def path(self) -> Path | None:
        return Path(self._file.name) if self._file else None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        data = b"".join(orjson.dumps(r, default=str, option=orjson.OPT_APPEND_NEWLINE) for r in records)
        if not data:
            return
        with self._lock:
            now = self.clock()
            if self._file is None or self._size >= self.max_bytes or now.strftime("%Y%m%d") != self._day:
                self._open(now)
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def _open(self, now: datetime) -> None:
        self.close_file()
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"{PREFIX}{now.strftime('%Y%m%d-%H%M%S')}"
        path, n = self.directory / f"{stem}{SUFFIX}", 1
        while path.exists():  # two rotations in one second, or a restart: never append to another's file
            path, n = self.directory / f"{stem}-{n}{SUFFIX}", n + 1
        self._file = open(path, "xb")  # noqa: SIM115 (kept open across writes)
        self._day, self._size = now.strftime("%Y%m%d"), 0

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        with self._lock:
            self.close_file()


# --- the reading side (the monitor) ------------------------------------------------------------

SERVED = ("champion", "canary")  # the routes whose answer went back to the client


def utc_time(value: str | None, *, where: str) -> pd.Timestamp | None:
    """An ISO date or date-time as a UTC time (a time without a zone is UTC); None passes."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        raise UserError(
            problem(where, "must be an ISO date or date-time (UTC)", value, "E.g. 2026-11-01 or 2026-11-01T08:00")
        ) from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def read_rows(directory: str | Path, *, where: str = "--from-log") -> pd.DataFrame:
    """Every line of every *.jsonl file of `directory` (file name order), one row each: time (UTC),
    request_id, route, version, id (the row's id column; null when not sent), prediction, proba,
    features, and position (the row's place among
    its request's rows of that route, which pairs a shadow row with the served one)."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not paths:
        raise UserError(problem(where, "holds no *.jsonl prediction log files", str(directory)))
    records = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row["features"], dict):
                    raise TypeError(row["features"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError(
                    problem(f"{path}:{number}", "is not a prediction log row with `features`", line[:80])
                ) from exc
            records.append(row)
    frame = pd.DataFrame(
        {
            "time": pd.to_datetime([r.get("time") for r in records], utc=True, errors="coerce", format="ISO8601"),
            **{k: [r.get(k) for r in records] for k in ("request_id", "route", "version", "id", "prediction", "proba")},
            "features": [r["features"] for r in records],
        }
    )
    frame["route"] = frame["route"].fillna("champion")
    frame["position"] = frame.groupby(["request_id", "route"], dropna=False).cumcount()
    return frame


def select(
    rows: pd.DataFrame,
    *,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    version: str | None = None,
    where: str = "--from-log",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(served rows, their shadow rows): the rows the service answered with (routes champion and
    canary) from `since` (inclusive) to `until` (exclusive), of model `version`; and the shadow
    rows of the same requests. No served row left is a UserError that says what the log holds."""
    served = rows[rows["route"].isin(SERVED)]
    keep = np.ones(len(served), dtype=bool)
    if since is not None:
        keep &= (served["time"] >= since).to_numpy()
    if until is not None:
        keep &= (served["time"] < until).to_numpy()
    if version is not None:
        keep &= (served["version"] == version).to_numpy()
    chosen = served[keep]
    if chosen.empty:
        asked = [
            f"--{k} {v.isoformat() if hasattr(v, 'isoformat') else v}"
            for k, v in (("since", since), ("until", until), ("version", version))
            if v is not None
        ]
        held = f"{len(served):,} served rows"
        if len(served):
            versions = ", ".join(sorted(map(str, served["version"].dropna().unique())))
            held += (
                f" from {served['time'].min().isoformat()} to {served['time'].max().isoformat()}, versions {versions}"
            )
        rule = f"has no served row (route {' or '.join(SERVED)})" + (f" matching {' '.join(asked)}" if asked else "")
        raise UserError(problem(where, rule, held, "Widen or drop the filters" if asked else "Serve some rows first"))
    shadow = rows[(rows["route"] == "shadow") & rows["request_id"].isin(set(chosen["request_id"]))]
    return chosen, shadow


def features(served: pd.DataFrame) -> pd.DataFrame:
    """The served rows' raw features as a table (JSON types: booleans stay booleans)."""
    return pd.DataFrame.from_records(list(served["features"]))


def _score(proba: Any, prediction: Any, positive: str | None) -> float:
    if not isinstance(proba, dict):
        return float(prediction)
    if positive is not None:
        return float(proba[positive])
    return math.nan  # multiclass: compared class by class in compare_shadow


def compare_shadow(served: pd.DataFrame, shadow: pd.DataFrame, *, positive: str | None) -> dict[str, Any]:
    """The shadow model against the served one on the same rows (same request_id and position):
    label agreement (classification) and the absolute difference of the scores: the probability of
    `positive` (binary), the largest class-probability difference (multiclass), the prediction
    (regression). No pair is a UserError."""
    pairs = served.merge(shadow, on=["request_id", "position"], suffixes=("", "_shadow"))
    if pairs.empty:
        raise UserError(
            problem(
                "--shadow",
                "needs shadow rows paired with served ones (same request_id and position in the request)",
                f"{len(shadow):,} shadow rows for {len(served):,} served rows",
                "Serve with a shadow model (`reprotab serve --shadow VERSION`), or drop --shadow",
            )
        )
    regression = all(p is None for p in pairs["proba"])
    if regression:
        what = "prediction"
        a = pairs["prediction"].astype(float).to_numpy()
        b = pairs["prediction_shadow"].astype(float).to_numpy()
        difference = np.abs(a - b)
    elif positive is not None:
        what = f"probability of class '{positive}'"
        a = np.array([_score(p, y, positive) for p, y in zip(pairs["proba"], pairs["prediction"], strict=True)])
        b = np.array(
            [_score(p, y, positive) for p, y in zip(pairs["proba_shadow"], pairs["prediction_shadow"], strict=True)]
        )
        difference = np.abs(a - b)
    else:
        what = "largest class-probability difference"
        difference = np.array(
            [
                max(abs(p[c] - q.get(c, 0.0)) for c in p)
                for p, q in zip(pairs["proba"], pairs["proba_shadow"], strict=True)
            ]
        )
    agree = None if regression else float((pairs["prediction"].map(str) == pairs["prediction_shadow"].map(str)).mean())
    return {
        "pairs": len(pairs),
        "requests": int(pairs["request_id"].nunique()),
        "served_versions": sorted(map(str, pairs["version"].dropna().unique())),
        "shadow_versions": sorted(map(str, pairs["version_shadow"].dropna().unique())),
        "served_rows_without_shadow": len(served) - len(pairs),
        "shadow_rows_unpaired": len(shadow) - len(pairs),
        "label_agreement": None if agree is None else round(agree, 6),
        "score": what,
        "mean_abs_difference": round(float(difference.mean()), 6),
        "max_abs_difference": round(float(difference.max()), 6),
    }


def files(directory: str | Path) -> list[Path]:
    """The log's files, oldest first."""
    return sorted(Path(directory).glob(f"{PREFIX}*{SUFFIX}"), key=lambda p: (p.stat().st_mtime, p.name))


def read(directory: str | Path) -> list[dict[str, Any]]:
    """Every record in the log, in file order."""
    return [json.loads(line) for path in files(directory) for line in path.read_text().splitlines() if line]
