"""The prediction log: every prediction the service makes, one JSON line per row.

Files: `<log dir>/predictions-YYYYMMDD-HHMMSS.jsonl` (UTC time the file was started; default
log dir `logs/predictions`), created with mode 0600 in a directory created 0700, since they hold
what clients sent. A new file starts when the current one passes `max_bytes` or when the UTC day
changes, so a day's predictions never share a file with another day's. Each line:

    {"time": "2026-11-23T19:30:01.123456+00:00",   ISO 8601, UTC, when the row was scored
     "request_id": "…",                            the client's request_id, else a generated uuid4
     "route": "champion" | "canary" | "shadow",    which model scored it (shadow: not returned)
     "version": "local:3f9c0a1b2c4d",              that model's version
     "id": "C-1042" | "h:…" | null,                the row's id column, when the client sent it
     "features": {"tenure_months": 3, …} | null,   the row as the client sent it (after validation
                                                   and the policy below); null on shadow lines
     "prediction": true,                           the label, or a number for regression
     "proba": {"False": 0.8, "True": 0.2} | null}  class probabilities (keys are the classes as
                                                   text), null for regression

A shadowed request writes each row twice: route "champion" (the answer returned) and route
"shadow" (the challenger's, same request_id). The shadow line's features are null: they are the
served line's, and writing them twice would only double what the log exposes. The monitor reads
these files; the format is the contract between the two. Writes from many threads are serialized
by one lock, and each request's lines are written and flushed together.

What is kept (`serve.log` in params.yaml, `PredictionLogParams`; without one, everything):
- `enabled: false`: nothing is written and no file is created.
- `sample`: the share of requests logged, decided from the request_id alone, so a request's lines
  (served and shadow) are all kept or all dropped, and the same request is kept on every replica.
  Its hash is salted so the sample is independent of the canary routing (which hashes the same id).
- `fields` (features kept; null = all) and `exclude` (features never written) apply to `features`.
- `hash`: the named features are written as `keyed_hash(hash_key(log dir), value)`, "h:" and 32 hex
  digits: equal values still match and join (labels hashed with the same key join by id), but a
  value cannot be read back nor guessed without the key `<log dir>/.hash-key` (32 random bytes,
  mode 0600, made once; losing it breaks joins with later lines). The name `id` hashes the row's
  id column (and a feature named id, if any). Text is hashed as sent, before any cut; 7 and "7"
  hash alike.
- `max_text` (256 without params): request ids and text values (features and ids) are cut to it.
- `retention_days` / `retention_mb`: when the log opens and after each rotation, this log's files
  (predictions-*.jsonl) started more than retention_days ago (the time in their name, else their
  modification time) are deleted, then the oldest while all of them exceed retention_mb; never the
  file being written. Each deletion is logged.

The reading side (`reprotab monitor --from-log`): `read_rows` reads every line, `select` keeps
the served rows (routes champion and canary: every row, not one per request) of a time window and
a model version with their shadow rows, and `compare_shadow` pairs each served row with its
shadow row (same request_id and position in the request) to say how often the two models agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import orjson
import pandas as pd

from reprotab.errors import UserError, problem

if TYPE_CHECKING:
    from reprotab.params.sections import PredictionLogParams

log = logging.getLogger(__name__)

PREFIX, SUFFIX = "predictions-", ".jsonl"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_TEXT = 256
KEY_FILE = ".hash-key"
HASH_ID = "id"  # in `hash`: the row's id column
_NAME = re.compile(r"predictions-(\d{8}-\d{6})(?:-(\d+))?\.jsonl")
_SAMPLE_SALT = b"reprotab prediction log sample\0"  # not route_of's bucket: sample and canary stay independent


def record(
    *,
    time: datetime,
    request_id: str,
    route: str,
    version: str,
    features: dict[str, Any] | None,
    prediction: Any,
    proba: dict[str, float] | None,
    row_id: Any = None,
) -> dict[str, Any]:
    """One line of the log (see the module docstring), before the log's policy applies."""
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


def _private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def hash_key(directory: str | Path) -> bytes:
    """The secret key of the log in `directory` (`<directory>/.hash-key`, 32 random bytes made once,
    mode 0600). Anything hashed with it (log lines, label ids) joins; without it nobody can test a
    guess against a hash."""
    directory = Path(directory)
    path = directory / KEY_FILE
    if not path.exists():
        _private_dir(directory)
        draft = directory / f"{KEY_FILE}.{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)  # whole, and never over a key another process made first
        finally:
            draft.unlink(missing_ok=True)
    key = path.read_bytes()
    if not key:
        raise UserError(
            problem(
                str(path),
                "must hold the prediction log's hash key",
                "an empty file",
                "Restore it, or delete it for a new key (earlier hashes then no longer join)",
            )
        )
    return key


def keyed_hash(key: bytes, value: Any) -> str | None:
    """`value` as "h:" and 32 hex digits of its HMAC-SHA256 under `key` (None stays None). Hashes
    the text of the value, so an id sent as 7 and one read as "7" join."""
    if value is None:
        return None
    return "h:" + hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:32]


def sampled(request_id: Any, share: float) -> bool:
    """Whether the request with this id is logged when `share` of requests are: the same answer
    for each of its lines, on every replica, and independent of the canary routing."""
    if share >= 1:
        return True
    digest = hashlib.sha256(_SAMPLE_SALT + str(request_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _cut(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def started(path: Path) -> datetime:
    """When a log file was started: the UTC time in its name, else its modification time."""
    match = _NAME.fullmatch(path.name)
    if match:
        return datetime.strptime(match[1], "%Y%m%d-%H%M%S").replace(tzinfo=UTC)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


class PredictionLog:
    """Append-only JSONL files in `directory`, rotated by size and by UTC day; thread-safe. `policy`
    (serve.log) says what is kept and for how long; None keeps everything, for ever."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] = _utc_now,
        policy: PredictionLogParams | None = None,
    ) -> None:
        self.directory, self.max_bytes, self.clock, self.policy = Path(directory), max_bytes, clock, policy
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._day: str | None = None
        self._size = 0
        self._max_text = policy.max_text if policy else DEFAULT_MAX_TEXT
        self._fields = None if policy is None or policy.fields is None else set(policy.fields)
        self._exclude = set(policy.exclude) if policy else set()
        self._hash = set(policy.hash) if policy else set()
        self._enabled = policy is None or policy.enabled
        self._key = hash_key(self.directory) if self._enabled and self._hash else None
        self._expire()

    @classmethod
    def from_params(cls, params: PredictionLogParams, *, clock: Callable[[], datetime] = _utc_now) -> PredictionLog:
        """The log serve.log describes: its directory, file size and policy."""
        max_bytes = max(1, int(params.max_file_mb * 1024 * 1024))
        return cls(params.dir, max_bytes=max_bytes, clock=clock, policy=params)

    @property
    def path(self) -> Path | None:
        return self._path if self._file else None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        if not self._enabled:
            return
        share = self.policy.sample if self.policy else 1.0
        data = b"".join(
            orjson.dumps(self._private(r), default=str, option=orjson.OPT_APPEND_NEWLINE)
            for r in records
            if r.get("request_id") is None or sampled(r["request_id"], share)
        )
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

    def _private(self, line: dict[str, Any]) -> dict[str, Any]:
        """A copy of the line with the policy applied (the caller's dicts are left as they are)."""
        out = dict(line)
        if "request_id" in out:
            out["request_id"] = _cut(out["request_id"], self._max_text)
        if "id" in out:
            out["id"] = self._value(HASH_ID, out["id"])
        if out.get("route") == "shadow":
            out["features"] = None
        elif isinstance(out.get("features"), dict):
            out["features"] = self._features(out["features"])
        return out

    def _features(self, features: dict[str, Any]) -> dict[str, Any]:
        limit = self._max_text
        if self._fields is None and not self._exclude and (self._key is None or not self._hash):
            # no list and no hashing: only over-long text changes (the common case, 1,000 rows a
            # request: a plain scan, and the row itself when nothing is cut)
            if any(v.__class__ is str and len(v) > limit for v in features.values()):
                return {name: v[:limit] if v.__class__ is str else v for name, v in features.items()}
            return features
        return {
            name: self._value(name, value)
            for name, value in features.items()
            if (self._fields is None or name in self._fields) and name not in self._exclude
        }

    def _value(self, name: str, value: Any) -> Any:
        if self._key is not None and name in self._hash:
            return keyed_hash(self._key, value)
        return _cut(value, self._max_text)

    def _open(self, now: datetime) -> None:
        self.close_file()
        _private_dir(self.directory)
        stem = f"{PREFIX}{now.strftime('%Y%m%d-%H%M%S')}"
        path, n = self.directory / f"{stem}{SUFFIX}", 1
        while True:  # two rotations in one second, or a restart: never append to another's file
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_WRONLY, 0o600)
                break
            except FileExistsError:
                path, n = self.directory / f"{stem}-{n}{SUFFIX}", n + 1
        self._file, self._path = os.fdopen(fd, "ab"), path
        self._day, self._size = now.strftime("%Y%m%d"), 0
        self._expire()

    def _expire(self) -> None:
        """Delete this log's files past retention_days, then the oldest while all exceed
        retention_mb, never the file being written: the policy's bound on what the log keeps."""
        days = self.policy.retention_days if self.policy else None
        mb = self.policy.retention_mb if self.policy else None
        if (days is None and mb is None) or not self.directory.is_dir():
            return
        now = self.clock()
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        kept: list[tuple[datetime, int, str, Path, int]] = []  # oldest first
        for path in self.directory.glob(f"{PREFIX}*{SUFFIX}"):
            if path == self._path:
                continue
            try:
                match, size = _NAME.fullmatch(path.name), path.stat().st_size
                kept.append((started(path), int(match[2] or 0) if match else 0, path.name, path, size))
            except FileNotFoundError:  # deleted by another process meanwhile
                continue
        kept.sort()
        if days is not None:
            cutoff = now - timedelta(days=days)
            self._delete([k[3] for k in kept if k[0] < cutoff], f"started more than {days:g} days ago")
            kept = [k for k in kept if k[0] >= cutoff]
        if mb is not None:
            total, past = self._size + sum(k[4] for k in kept), []
            for *_, path, size in kept:
                if total <= mb * 1024 * 1024:
                    break
                past.append(path)
                total -= size
            self._delete(past, f"all files past {mb:g} MB")

    def _delete(self, paths: list[Path], why: str) -> None:
        gone = []
        for path in paths:
            try:
                path.unlink(missing_ok=True)
                gone.append(path.name)
            except OSError as exc:  # retention must not fail a prediction: tried again at the next rotation
                log.warning("prediction log: cannot delete %s: %s", path, exc)
        if gone:
            log.info("prediction log %s: deleted %s (%s)", self.directory, ", ".join(gone), why)

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


def json_lines(paths: Iterable[Path], *, what: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(`path:line`, the parsed object) for each non-blank line of `paths`, in order: the one reader
    of the service's JSON-lines files (the prediction log, the feedback files); a line that is not
    a JSON object is one UserError naming where it is."""
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                found = json.loads(line)
                if not isinstance(found, dict):
                    raise TypeError(found)
            except (json.JSONDecodeError, TypeError) as exc:
                raise UserError(problem(f"{path}:{number}", f"is not {what}", line[:80])) from exc
            yield f"{path}:{number}", found


def read_rows(directory: str | Path, *, where: str = "--from-log") -> pd.DataFrame:
    """Every line of every *.jsonl file of `directory` (file name order), one row each: time (UTC),
    request_id, route, version, id (the row's id column; null when not sent), prediction, proba,
    features (null on shadow rows), and position (the row's place among
    its request's rows of that route, which pairs a shadow row with the served one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(
            problem(
                where, "is not a directory: no prediction log here", str(directory), "Name `reprotab serve`'s --log-dir"
            )
        )
    paths = sorted(directory.glob("*.jsonl"))
    if not paths:
        raise UserError(problem(where, "holds no *.jsonl prediction log files", str(directory)))
    records = []
    for where, row in json_lines(paths, what="a prediction log row with `features`"):
        features = row.get("features")
        if not (
            isinstance(features, dict) or (features is None and "features" in row and row.get("route") == "shadow")
        ):
            raise UserError(problem(where, "is not a prediction log row with `features`", str(row)[:80]))
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
    """The served rows' raw features as a table (JSON types: booleans stay booleans); shadow rows,
    whose features are the served rows', are left out."""
    if "route" in served:
        served = served[served["route"].isin(SERVED)]
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
