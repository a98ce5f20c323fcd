"""`reprotab monitor --batch <folder>`: each partition checked alone with its own report, only the
partitions not seen before under the same model, reference and params, and a manifest that keeps
what a failed run finished."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from reprotab.data.demo import generate
from reprotab.monitoring.partitions import report_folders
from reprotab.monitoring.report import main
from tests.helpers import base_params

DAYS = ("date=2026-11-01/part-0.parquet", "date=2026-11-02/part-0.parquet", "date=2026-11-03/part-0.parquet")


def _write_day(folder, name, *, seed, drift=0.0):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(rows=600, seed=seed, drift=drift).to_parquet(path)


@pytest.fixture
def daily(workspace):
    folder = workspace / "daily"
    for i, name in enumerate(DAYS):
        _write_day(folder, name, seed=20 + i, drift=1.0 if i == 2 else 0.0)
    params = base_params(monitor={"bootstrap": 0})
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def _checked(capsys):
    return capsys.readouterr().out.splitlines()[-1]


def test_each_partition_gets_its_own_verdict_and_report(daily, workspace, capsys):
    main(["--batch", str(daily)])
    printed = capsys.readouterr().out
    out = workspace / "reports/monitor/daily"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [e["name"] for e in manifest["partitions"]] == list(DAYS)
    assert [e["retrain"] for e in manifest["partitions"]] == [False, False, True]  # only the drifted day
    for day in ("date=2026-11-01/part-0", "date=2026-11-02/part-0", "date=2026-11-03/part-0"):
        report = json.loads((out / day / "drift.json").read_text())
        assert report["rows"] == 600 and report["partition"]["name"] == f"{day}.parquet"
    assert "date=2026-11-03/part-0.parquet: retrain: true (600 rows, checked now)\n  - " in printed
    assert printed.splitlines()[-1] == "3 partitions, 3 checked now, 0 seen before"


def test_a_rerun_checks_only_the_new_partition(daily, workspace, capsys):
    main(["--batch", str(daily)])
    out = workspace / "reports/monitor/daily"
    first = (out / "date=2026-11-01/part-0/drift.json").stat().st_mtime_ns
    _write_day(daily, "date=2026-11-04/part-0.parquet", seed=40)
    capsys.readouterr()
    main(["--batch", str(daily)])
    assert _checked(capsys) == "4 partitions, 1 checked now, 3 seen before"
    assert (out / "date=2026-11-01/part-0/drift.json").stat().st_mtime_ns == first
    _write_day(daily, "date=2026-11-01/part-0.parquet", seed=99)  # a day rewritten: checked again
    main(["--batch", str(daily)])
    assert _checked(capsys) == "4 partitions, 1 checked now, 3 seen before"


def test_other_thresholds_check_every_partition_again(daily, workspace, capsys):
    main(["--batch", str(daily)])
    params = base_params(monitor={"bootstrap": 0, "psi_moderate": 0.2})
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    capsys.readouterr()
    main(["--batch", str(daily)])
    assert _checked(capsys) == "3 partitions, 3 checked now, 0 seen before"


def test_a_removed_partition_leaves_the_manifest_and_its_report(daily, workspace, capsys):
    main(["--batch", str(daily)])
    os.remove(daily / DAYS[0])
    capsys.readouterr()
    main(["--batch", str(daily)])
    out = workspace / "reports/monitor/daily"
    assert _checked(capsys) == "2 partitions, 0 checked now, 2 seen before"
    assert not (out / "date=2026-11-01").exists()
    assert [e["name"] for e in json.loads((out / "_manifest.json").read_text())["partitions"]] == list(DAYS[1:])


def test_a_bad_partition_stops_the_run_and_keeps_what_was_checked(daily, workspace, capsys):
    generate(rows=50, seed=1).drop(columns=["contract"]).to_parquet(daily / "date=2026-11-02/part-0.parquet")
    with pytest.raises(SystemExit) as stopped:
        main(["--batch", str(daily)])
    assert stopped.value.code == 2
    said = "--batch partition date=2026-11-02/part-0.parquet: lacks 1 feature column(s) the model was trained on"
    assert said in capsys.readouterr().err
    out = workspace / "reports/monitor/daily"
    kept = json.loads((out / "_manifest.json").read_text())["partitions"]
    assert [e["name"] for e in kept] == [DAYS[0]]  # the day before the bad one is not checked again
    _write_day(daily, DAYS[1], seed=21)
    capsys.readouterr()
    main(["--batch", str(daily)])
    assert _checked(capsys) == "3 partitions, 2 checked now, 1 seen before"


def test_partitions_that_would_share_a_report_folder_keep_their_suffix():
    folders = report_folders(["events.2026-11-01.parquet", "events.2026-11-02.parquet", "day.csv", "day.parquet"])
    assert folders == {
        "events.2026-11-01.parquet": "events.2026-11-01",
        "events.2026-11-02.parquet": "events.2026-11-02",
        "day.csv": "day.csv",
        "day.parquet": "day.parquet",
    }
