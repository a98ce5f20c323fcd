"""What the prediction log keeps (serve.log): private files, cut text, sampling by request, the
field lists, keyed hashes that still join, shadow lines without features, and retention that
deletes old files but never the one being written. Real files; only the clock is injected."""

from __future__ import annotations

import logging
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from reprotab.errors import UserError
from reprotab.params.sections import PredictionLogParams
from reprotab.serving import prediction_log
from reprotab.serving.prediction_log import PredictionLog, hash_key, keyed_hash, record, sampled
from reprotab.serving.routing import route_of

START = datetime(2026, 11, 1, 12, tzinfo=UTC)
FEATURES = {"tenure_months": 3, "contract": "month-to-month", "email": "ann@example.com", "churn_risk": None}


def line(request_id: str, *, route: str = "champion", features: dict | None = None, row_id=None) -> dict:
    return record(
        time=START,
        request_id=request_id,
        route=route,
        version="v1",
        features=dict(FEATURES if features is None else features),
        prediction=True,
        proba={"False": 0.2, "True": 0.8},
        row_id=row_id,
    )


def policy(directory: Path, **changes) -> PredictionLogParams:
    return PredictionLogParams(dir=str(directory), retention_days=None, retention_mb=None, **changes)


def written(directory: Path, params: PredictionLogParams, lines: list[dict]) -> list[dict]:
    log = PredictionLog.from_params(params, clock=lambda: START)
    log.write(lines)
    log.close()
    return prediction_log.read(directory)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_directory_and_key_are_private(tmp_path):
    directory = tmp_path / "logs/predictions"
    log = PredictionLog.from_params(policy(directory, hash=("id",)), clock=lambda: START)
    log.write([line("r1", row_id="C-1")])
    log.close()
    (path,) = prediction_log.files(directory)
    assert mode(path) == 0o600 and mode(directory) == 0o700
    key = directory / ".hash-key"
    assert mode(key) == 0o600 and len(key.read_bytes()) == 32
    assert hash_key(directory) == key.read_bytes()  # made once, then read

    plain = tmp_path / "plain"  # no policy: the files are private all the same
    log = PredictionLog(plain, clock=lambda: START)
    log.write([line("r1")])
    log.close()
    assert [mode(p) for p in prediction_log.files(plain)] == [0o600] and mode(plain) == 0o700


def test_from_params_takes_the_directory_and_file_size(tmp_path):
    log = PredictionLog.from_params(policy(tmp_path / "here", max_file_mb=0.5))
    assert log.directory == tmp_path / "here" and log.max_bytes == 512 * 1024
    assert log.policy is not None and log.policy.max_text == 256


def test_request_ids_and_text_are_cut(tmp_path):
    long = "x" * 300
    log = PredictionLog(tmp_path / "default", clock=lambda: START)  # no policy: 256 characters
    log.write([line(long, features={"note": long, "n": 10**12}, row_id=long)])
    log.close()
    (row,) = prediction_log.read(tmp_path / "default")
    assert row["request_id"] == "x" * 256 and row["id"] == "x" * 256
    assert row["features"] == {"note": "x" * 256, "n": 10**12}

    (row,) = written(tmp_path / "short", policy(tmp_path / "short", max_text=5), [line(long, row_id=7)])
    assert row["request_id"] == "xxxxx" and row["id"] == 7
    assert row["features"] == {"tenure_months": 3, "contract": "month", "email": "ann@e", "churn_risk": None}


def test_a_disabled_log_writes_nothing(tmp_path):
    directory = tmp_path / "off"
    log = PredictionLog.from_params(policy(directory, enabled=False, hash=("email",)), clock=lambda: START)
    log.write([line("r1"), line("r1", route="shadow")])
    log.close()
    assert not directory.exists() and log.path is None


def test_sampling_keeps_a_share_of_requests_whole(tmp_path):
    ids = [f"req-{i}" for i in range(2000)]
    lines = [line(i, route=route) for i in ids for route in ("champion", "shadow")]
    rows = written(tmp_path / "a", policy(tmp_path / "a", sample=0.3), lines)
    kept = {r["request_id"] for r in rows}
    assert 0.26 < len(kept) / len(ids) < 0.34
    routes = {i: sorted(r["route"] for r in rows if r["request_id"] == i) for i in kept}
    assert all(found == ["champion", "shadow"] for found in routes.values())  # a request's lines stay together
    again = written(tmp_path / "b", policy(tmp_path / "b", sample=0.3), lines)
    assert {r["request_id"] for r in again} == kept  # from the id alone: the same on every replica
    canary = sum(route_of(i, 0.3) == "canary" for i in kept) / len(kept)
    assert 0.22 < canary < 0.38  # not the canary's requests: the sample does not follow the routing
    assert all(sampled(i, 1.0) for i in ids)


def test_allow_and_deny_lists_apply_to_features(tmp_path):
    (row,) = written(tmp_path / "a", policy(tmp_path / "a", fields=("tenure_months", "contract")), [line("r1")])
    assert row["features"] == {"tenure_months": 3, "contract": "month-to-month"}
    (row,) = written(tmp_path / "d", policy(tmp_path / "d", exclude=("email",)), [line("r1", row_id="C-1")])
    assert row["features"] == {"tenure_months": 3, "contract": "month-to-month", "churn_risk": None}
    assert row["id"] == "C-1"
    params = policy(tmp_path / "b", fields=("tenure_months", "email"), exclude=("contract",))
    (row,) = written(tmp_path / "b", params, [line("r1")])
    assert row["features"] == {"tenure_months": 3, "email": "ann@example.com"}


def test_hashes_are_stable_keyed_and_join_ids_of_either_type(tmp_path):
    directory = tmp_path / "logs"
    params = policy(directory, hash=("email", "id"), max_text=5)  # a hash is never cut
    lines = [line("r1", row_id=7), line("r2", row_id="7"), line("r3", features={"email": None})]
    rows = written(directory, params, lines)
    key = hash_key(directory)
    email = keyed_hash(key, "ann@example.com")
    assert email is not None and email.startswith("h:") and len(email) == 34
    assert [r["features"].get("email") for r in rows] == [email, email, None]
    assert [r["id"] for r in rows] == [keyed_hash(key, 7)] * 2 + [None]
    assert keyed_hash(key, 7) == keyed_hash(key, "7") and keyed_hash(key, None) is None
    assert rows[0]["features"]["contract"] == "month"  # features not named are only cut

    later = written(directory, params, [line("r4", row_id=7)])  # a restart: same key, same hashes
    assert later[-1]["id"] == rows[0]["id"]
    assert keyed_hash(hash_key(tmp_path / "other"), 7) != keyed_hash(key, 7)
    assert keyed_hash(b"k", "a") != keyed_hash(b"k", "b")


def test_an_empty_key_file_is_an_error(tmp_path):
    (tmp_path / ".hash-key").write_bytes(b"")
    with pytest.raises(UserError, match=r"\.hash-key: must hold the prediction log's hash key. Got 'an empty file'"):
        hash_key(tmp_path)


def test_shadow_lines_carry_no_features_and_the_log_still_reads(tmp_path):
    lines = [line("r1", row_id="C-1"), line("r1", route="shadow", row_id="C-1"), line("r2", route="canary")]
    rows = written(tmp_path, policy(tmp_path), lines)
    assert [r["features"] for r in rows] == [FEATURES, None, FEATURES]
    table = prediction_log.read_rows(tmp_path)
    served, shadow = prediction_log.select(table)
    assert list(shadow["request_id"]) == ["r1"] and shadow["features"].isna().all()
    assert prediction_log.features(table).to_dict("records") == [FEATURES, FEATURES]  # served rows only
    assert prediction_log.compare_shadow(served, shadow, positive="True")["pairs"] == 1

    (tmp_path / "predictions-20991231-000000.jsonl").write_text(
        '{"time": "2026-11-01T00:00:00+00:00", "route": "champion", "features": null}\n'
    )
    with pytest.raises(UserError, match="is not a prediction log row with `features`"):
        prediction_log.read_rows(tmp_path)  # a served row still needs its features


def test_retention_deletes_files_older_than_the_days(tmp_path, caplog):
    now = [START]
    params = PredictionLogParams(dir=str(tmp_path), retention_days=3, retention_mb=None)
    log = PredictionLog.from_params(params, clock=lambda: now[0])
    names = []
    for day in range(4):
        now[0] = START + timedelta(days=day)
        log.write([line(f"r{day}")])
        names.append(log.path.name if log.path else "")
    assert [
        p.name for p in prediction_log.files(tmp_path)
    ] == names  # the first started exactly 3 days before the last: kept
    (tmp_path / "notes.jsonl").write_text("{}\n")  # not this log's: never touched
    stray = tmp_path / "predictions-manual.jsonl"  # no time in its name: its modification time counts
    stray.write_text("{}\n")
    os.utime(stray, (START.timestamp(), START.timestamp()))

    now[0] = START + timedelta(days=4)
    with caplog.at_level(logging.INFO, logger="reprotab.serving.prediction_log"):
        log.write([line("r4")])
    current = log.path.name if log.path else ""
    log.close()
    kept = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert kept == sorted([*names[1:], current, "notes.jsonl"])
    gone = [names[0], "predictions-manual.jsonl"]
    assert f"deleted {', '.join(gone)} (started more than 3 days ago)" in caplog.text

    now[0] = START + timedelta(days=9)  # the log opening (a restart) deletes as well
    PredictionLog.from_params(params, clock=lambda: now[0])
    assert [p.name for p in tmp_path.glob("*.jsonl")] == ["notes.jsonl"]


def test_retention_by_size_deletes_the_oldest_never_the_current(tmp_path, caplog):
    now = [START]
    pad = {"pad": "z" * 400}
    size = len(orjson.dumps(line("r0", features=pad))) + 1  # every line below has this size
    params = PredictionLogParams(dir=str(tmp_path), max_text=1000, retention_days=None, retention_mb=2.5 * size / 2**20)
    log = PredictionLog.from_params(params, clock=lambda: now[0])
    log.max_bytes = 1  # every write starts a file
    names = []
    with caplog.at_level(logging.INFO, logger="reprotab.serving.prediction_log"):
        for k in range(6):
            now[0] = START + timedelta(seconds=k)
            log.write([line(f"r{k}", features=pad)])
            names.append(log.path.name if log.path else "")
    log.close()
    files = prediction_log.files(tmp_path)
    assert [p.stat().st_size for p in files] == [size] * 3
    # at each rotation the new file is empty and the older ones must fit in 2.5 lines: the 2 newest stay
    assert [p.name for p in files] == names[-3:]
    assert f"deleted {names[2]} (all files past" in caplog.text

    tiny = PredictionLogParams(dir=str(tmp_path / "tiny"), retention_days=None, retention_mb=1e-6)
    log = PredictionLog.from_params(tiny, clock=lambda: now[0])
    log.max_bytes = 1
    for k in range(3):
        now[0] = START + timedelta(minutes=k)
        log.write([line(f"t{k}")])
    log.close()
    (left,) = prediction_log.read(tmp_path / "tiny")  # over the bound alone, yet the file being written stays
    assert left["request_id"] == "t2"
