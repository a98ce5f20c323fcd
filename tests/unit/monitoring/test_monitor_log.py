"""`reprotab monitor --from-log` on a real prediction log written by PredictionLog: every served
row counts (not one per request), --since/--until/--version filter the rows, shadow rows are
never monitored, and --shadow compares the shadow model with the served one on the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from reprotab.data.demo import generate
from reprotab.data.tables import write_json
from reprotab.model import served
from reprotab.monitoring.report import main
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from reprotab.serving.prediction_log import PredictionLog, record
from reprotab.serving.scoring import local_version
from tests.helpers import base_params

START = datetime(2026, 11, 1, tzinfo=UTC)
ROWS, REQUESTS = 1501, 141


@pytest.fixture(scope="module")
def trained():
    forest = {"random_forest": {"n_estimators": 30, "min_samples_leaf": 5, "n_jobs": 1}}
    return run(generate(rows=3000, seed=0), parse_params(base_params(model="random_forest", hyperparameters=forest)))


def champion_p(i: int) -> float:
    return (i % 10) / 10


def shadow_p(i: int) -> float:
    return champion_p(i) + (0.2 if i % 4 == 0 else 0.0)  # 0.4 -> 0.6 and 0.3 -> 0.5 flip the label


def write_log(directory: Path, version: str) -> list[dict]:
    """1,501 rows in 141 requests, one an hour from 2026-11-01; every 10th request answered by the
    canary (v9.9.9), every 3rd shadowed (v2.0.0). Returns what was served, per request."""
    data = generate(rows=ROWS, seed=12).drop(columns=["churned", "next_month_spend", "customer_id"])
    rows = json.loads(data.to_json(orient="records"))
    now = [START]
    log = PredictionLog(directory, clock=lambda: now[0])
    requests = []
    for k, index in enumerate(np.array_split(np.arange(ROWS), REQUESTS)):
        now[0] = START + timedelta(hours=k)
        route, answering = ("canary", "v9.9.9") if k % 10 == 9 else ("champion", version)
        routes = [(route, answering, champion_p)] + ([("shadow", "v2.0.0", shadow_p)] if k % 3 == 0 else [])
        for name, model_version, p in routes:
            log.write(
                record(
                    time=now[0],
                    request_id=f"r{k}",
                    route=name,
                    version=model_version,
                    features=rows[i],
                    prediction=p(i) >= 0.5,
                    proba={"False": 1 - p(i), "True": p(i)},
                )
                for i in index
            )
        requests.append({"k": k, "rows": [int(i) for i in index], "route": route, "shadowed": k % 3 == 0})
    log.close()
    return requests


@pytest.fixture
def workspace(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    served.save(trained.model, tmp_path / "models/model.zip")
    (tmp_path / "data/prepared").mkdir(parents=True)
    trained.splits["train"].to_parquet(tmp_path / "data/prepared/train.parquet")
    trained.splits["test"].to_parquet(tmp_path / "data/prepared/test.parquet")
    write_json({"test": trained.metrics["test"]}, tmp_path / "reports/evaluate/metrics.json")
    (tmp_path / "params.yaml").write_text(json.dumps(base_params(monitor={"bootstrap": 50})))
    version = local_version(tmp_path / "models/model.zip")
    return tmp_path, version, write_log(tmp_path / "logs", version)


def report_of(folder: Path) -> dict:
    return json.loads((folder / "drift.json").read_text())


def test_every_served_row_is_monitored_and_shadow_rows_are_not(workspace, capsys):
    root, version, requests = workspace
    main(["--from-log", "logs"])
    report = report_of(root / "reports/monitor/log-logs")
    shadowed = sum(len(r["rows"]) for r in requests if r["shadowed"])
    canary = sum(len(r["rows"]) for r in requests if r["route"] == "canary")
    assert report["rows"] == ROWS and report["log"]["rows"] == ROWS and report["log"]["requests"] == REQUESTS
    assert report["log"]["routes"] == {"champion": ROWS - canary, "canary": canary}
    assert report["log"]["versions"] == {version: ROWS - canary, "v9.9.9": canary}
    assert report["log"]["shadow_rows"] == shadowed and "shadow" not in report
    assert report["model"]["version"] == version and report["drifted"] == []
    assert "1,501 served rows in 141 requests" in (root / "reports/monitor/log-logs/drift.md").read_text()
    assert f"model: {version}" in capsys.readouterr().out


def test_since_until_and_version_filter_the_served_rows(workspace):
    root, version, requests = workspace
    main(["--from-log", "logs", "--since", "2026-11-02", "--until", "2026-11-03T12:00", "--name", "window"])
    window = [r for r in requests if 24 <= r["k"] < 60]  # one request an hour: hours 24 to 59
    report = report_of(root / "reports/monitor/window")
    assert report["rows"] == sum(len(r["rows"]) for r in window)
    assert report["log"]["filters"] == {"since": "2026-11-02", "until": "2026-11-03T12:00"}
    assert (
        report["log"]["first"] == "2026-11-02T00:00:00+00:00" and report["log"]["last"] == "2026-11-03T11:00:00+00:00"
    )

    main(["--from-log", "logs", "--version", version, "--name", "champion"])  # the workspace model's own rows
    report = report_of(root / "reports/monitor/champion")
    assert report["rows"] == sum(len(r["rows"]) for r in requests if r["route"] == "champion")
    assert set(report["log"]["versions"]) == {version}


def test_a_filter_that_leaves_no_row_is_one_error(workspace, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--from-log", "logs", "--since", "2026-12-01"])
    message = capsys.readouterr().err
    assert stopped.value.code == 2 and message.count("ERROR") == 1
    assert (
        "--from-log: has no served row (route champion or canary) matching --since 2026-12-01T00:00:00+00:00" in message
    )
    assert "Got '1,501 served rows from 2026-11-01T00:00:00+00:00 to 2026-11-06T20:00:00+00:00" in message
    with pytest.raises(SystemExit):
        main(["--from-log", "logs", "--since", "November"])
    assert "--since: must be an ISO date or date-time (UTC)" in capsys.readouterr().err


def test_shadow_comparison_pairs_rows_by_request_and_position(workspace):
    root, _, requests = workspace
    main(["--from-log", "logs", "--shadow", "--name", "shadow"])
    report = report_of(root / "reports/monitor/shadow")
    paired = [i for r in requests if r["shadowed"] for i in r["rows"]]
    differences = [abs(shadow_p(i) - champion_p(i)) for i in paired]
    agree = [(shadow_p(i) >= 0.5) == (champion_p(i) >= 0.5) for i in paired]
    shadow = report["shadow"]
    assert shadow["pairs"] == len(paired) and shadow["shadow_rows_unpaired"] == 0
    assert shadow["served_rows_without_shadow"] == ROWS - len(paired)
    assert shadow["label_agreement"] == pytest.approx(np.mean(agree), abs=1e-6) and 0 < np.mean(agree) < 1
    assert shadow["mean_abs_difference"] == pytest.approx(np.mean(differences), abs=1e-6)
    assert shadow["max_abs_difference"] == pytest.approx(0.2)
    assert shadow["score"] == "probability of class 'True'" and shadow["shadow_versions"] == ["v2.0.0"]
    assert "## Shadow comparison" in (root / "reports/monitor/shadow/drift.md").read_text()
