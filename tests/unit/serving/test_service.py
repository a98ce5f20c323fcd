"""The HTTP service (reprotab/serving/service.py) in-process: request checks, metrics, canary and
shadow routing, the prediction log. As a real uvicorn process: tests/integration/test_service.py."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reprotab.model.card import ModelCard
from reprotab.serving import prediction_log
from reprotab.serving.prediction_log import PredictionLog
from reprotab.serving.routing import Served, route_of
from reprotab.serving.service import ServiceConfig, create_app
from tests.helpers import request_rows

pytest_plugins = ["tests.service_fixtures"]  # models, champion, challenger, client


ROWS = request_rows(3)


def test_predict_answers_with_version_in_body_and_header(client, champion):
    response = client.post("/predict", json={"rows": ROWS, "request_id": "r1"})
    assert response.status_code == 200
    body = response.json()
    assert response.headers["X-Model-Version"] == body["model_version"] == champion.version
    assert body["request_id"] == "r1" and body["route"] == "champion"
    assert body["threshold"] == champion.model.decision_threshold
    frame = champion.model.predict(__import__("pandas").DataFrame.from_records(ROWS))
    assert [p["prediction"] for p in body["predictions"]] == frame.tolist()
    assert all(abs(sum(p["proba"].values()) - 1) < 1e-9 for p in body["predictions"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"rows": [', [{"row": None, "field": None}]),
        (b'{"rows": []}', [{"row": None, "field": "rows"}]),
        (b'{"items": []}', [{"row": None, "field": None}]),
        (json.dumps({"rows": [{**ROWS[0], "age": "old"}]}).encode(), [{"row": 0, "field": "age"}]),
        (json.dumps({"rows": [{**ROWS[0], "region": ["north"]}]}).encode(), [{"row": 0, "field": "region"}]),
        (json.dumps({"rows": [ROWS[0], {**ROWS[1], "shoe_size": 44}]}).encode(), [{"row": 1, "field": "shoe_size"}]),
        (
            json.dumps({"rows": [{k: v for k, v in ROWS[0].items() if k != "tenure_months"}]}).encode(),
            [{"row": 0, "field": "tenure_months"}],
        ),
        (
            json.dumps(
                {"rows": [{**ROWS[0], "age": float("nan")}, {**ROWS[1], "discount_pct": float("inf")}]}
            ).encode(),
            [{"row": 0, "field": "age"}, {"row": 1, "field": "discount_pct"}],
        ),
        (json.dumps({"rows": [3]}).encode(), [{"row": 0, "field": None}]),
        (json.dumps({"rows": [{**ROWS[0], "total_charges": "NaN"}]}).encode(), [{"row": 0, "field": "total_charges"}]),
    ],
    ids=[
        *("malformed", "empty", "no-rows", "wrong-type", "list", "unknown"),
        *("missing", "nan-inf", "not-object", "nan-text"),
    ],
)
def test_bad_requests_are_422_with_one_entry_per_row_and_field(client, champion, body, expected):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [{"row": d["row"], "field": d["field"]} for d in detail] == expected
    assert all(d["error"] for d in detail)
    assert response.headers["X-Model-Version"] == response.json()["model_version"] == champion.version


def test_numbers_as_text_and_blanks_are_cleaned_as_in_training(client, champion):
    rows = [{**ROWS[0], "total_charges": " "}, {**ROWS[1], "total_charges": "268.5", "has_partner": "true"}]
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200
    cleaned = [{**rows[0], "total_charges": None}, {**rows[1], "total_charges": 268.5, "has_partner": True}]
    expected = champion.model.predict(__import__("pandas").DataFrame.from_records(cleaned)).tolist()
    assert [p["prediction"] for p in answer.json()["predictions"]] == expected


def test_cleaning_reports_unseen_categories_text_and_infinities(client, champion):
    rows = request_rows(20)
    rows[0] = {**rows[0], "region": "mars"}
    rows[1] = {**rows[1], "total_charges": "unknown"}  # 19 of 20 are numbers: imputed, as in a file
    rows[2] = {**rows[2], "monthly_charges": "-inf"}
    answer = client.post("/predict", json={"rows": rows})
    assert answer.status_code == 200
    cleaning = answer.json()["cleaning"]
    assert sorted(cleaning) == ["monthly_charges", "region", "total_charges"]
    assert (cleaning["region"]["unseen"], cleaning["region"]["unseen_examples"]) == (1, ["mars"])
    assert (cleaning["total_charges"]["text"], cleaning["total_charges"]["text_examples"]) == (1, ["unknown"])
    assert cleaning["monthly_charges"]["infinite"] == 1
    cleaned = [{**rows[1], "total_charges": None}, {**rows[2], "monthly_charges": None}]
    expected = champion.model.predict(__import__("pandas").DataFrame.from_records(cleaned)).tolist()
    assert [p["prediction"] for p in answer.json()["predictions"][1:3]] == expected
    assert client.post("/predict", json={"rows": ROWS}).json()["cleaning"] == {}


def test_text_in_a_numeric_field_of_a_small_request_is_422_naming_each_row_and_field(client):
    rows = [{**ROWS[0], "age": "old"}, {**ROWS[1], "age": "young"}, ROWS[2]]
    response = client.post("/predict", json={"rows": rows})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(d["row"], d["field"]) for d in detail] == [(0, "age"), (1, "age")]
    expected = "'old' is not a number, and only 33% of this request's values of this feature are (at least 95% must be)"
    assert detail[0]["error"] == expected


def test_rows_the_model_cannot_score_are_422_not_500(client):
    response = client.post("/predict", json={"rows": [ROWS[0], {**ROWS[1], "monthly_charges": 1e300}]})
    assert response.status_code == 422
    assert [(d["row"], d["error"][:17]) for d in response.json()["detail"]] == [(1, "cannot be scored:")]


def test_too_many_rows_or_bytes_are_413(client):
    assert client.post("/predict", json={"rows": request_rows(51)}).status_code == 413
    big = json.dumps({"rows": ROWS, "padding": "x" * 300_000})
    assert client.post("/predict", content=big).status_code == 413


def test_health_ready_metadata(client, champion):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").status_code == 200
    meta = client.get("/metadata").json()
    assert meta["model_version"] == champion.version
    assert meta["commit"] is None  # a bare file, not a registered version
    card = ModelCard.read(Path(champion.info["path"]).with_name("model.json"))  # what train wrote beside it
    assert (meta["model"], meta["training_data_hash"]) == ("random_forest", card.training_data_hash)
    assert meta["classes"] == [False, True]
    assert {"name": "region", "type": "categorical"} in meta["features"]
    assert {"name": "tenure_months", "type": "numeric"} in meta["features"]


def test_metrics_count_requests_errors_and_predicted_classes(client):
    client.post("/predict", json={"rows": ROWS})
    client.post("/predict", content=b"nope")
    text = client.get("/metrics").text
    assert 'reprotab_requests_total{endpoint="/predict",status="200"} 1.0' in text
    assert 'reprotab_requests_total{endpoint="/predict",status="422"} 1.0' in text
    assert 'reprotab_errors_total{endpoint="/predict",kind="malformed"} 1.0' in text
    assert 'reprotab_request_seconds_count{endpoint="/predict"} 2.0' in text
    counts = [line for line in text.splitlines() if line.startswith("reprotab_predictions_total{")]
    assert sum(float(line.split()[-1]) for line in counts) == 3.0


def test_canary_share_is_deterministic_and_close_to_the_share():
    ids = [f"req-{i}" for i in range(4000)]
    routes = [route_of(i, 0.1) for i in ids]
    assert routes == [route_of(i, 0.1) for i in ids]
    assert 0.085 < routes.count("canary") / len(ids) < 0.115
    assert set(route_of(i, 0.0) for i in ids) == {"champion"}
    assert set(route_of(i, 1.0) for i in ids) == {"canary"}


def test_canary_requests_are_answered_and_logged_by_the_challenger(champion, challenger, tmp_path):
    config = ServiceConfig(log_dir=str(tmp_path), canary_share=0.3)
    with TestClient(create_app(champion, config=config, canary=challenger)) as client:
        answers = [client.post("/predict", json={"rows": ROWS[:1], "request_id": f"id-{i}"}) for i in range(40)]
    for i, answer in enumerate(answers):
        route = route_of(f"id-{i}", 0.3)
        version = challenger.version if route == "canary" else champion.version
        assert (answer.json()["route"], answer.headers["X-Model-Version"]) == (route, version)
    logged = {(r["request_id"], r["route"], r["version"]) for r in prediction_log.read(tmp_path)}
    assert logged == {
        (f"id-{i}", a.json()["route"], a.headers["X-Model-Version"]) for i, a in enumerate(answers)
    }  # fmt: skip
    assert {"canary", "champion"} <= {route for _, route, _ in logged}


def test_shadow_returns_the_champion_and_logs_both(champion, challenger, tmp_path):
    config = ServiceConfig(log_dir=str(tmp_path))
    with TestClient(create_app(champion, config=config, shadow=challenger)) as client:
        answer = client.post("/predict", json={"rows": ROWS, "request_id": "s1"})
    assert answer.json()["route"] == "champion" and answer.headers["X-Model-Version"] == champion.version
    records = prediction_log.read(tmp_path)
    assert sorted((r["route"], r["version"]) for r in records) == sorted(
        [("champion", champion.version)] * 3 + [("shadow", challenger.version)] * 3
    )
    champion_lines = [r for r in records if r["route"] == "champion"]
    assert [r["features"] for r in champion_lines] == ROWS
    assert [r["prediction"] for r in champion_lines] == [p["prediction"] for p in answer.json()["predictions"]]
    assert set(champion_lines[0]) == {"time", "request_id", "route", "version", "id", "features", "prediction", "proba"}
    assert datetime.fromisoformat(champion_lines[0]["time"]).tzinfo is not None


def test_a_row_may_carry_its_id_which_is_echoed_and_logged(champion, tmp_path):
    """/metadata names customer_id as the id column: a row may send it (optional), its prediction
    echoes it, and the log records it apart from the features, so later labels join by id."""
    rows = [{**ROWS[0], "customer_id": "C-1"}, ROWS[1], {**ROWS[2], "customer_id": 7}]
    with TestClient(create_app(champion, config=ServiceConfig(log_dir=str(tmp_path)))) as client:
        answer = client.post("/predict", json={"rows": rows, "request_id": "with-ids"})
        bad = client.post("/predict", json={"rows": [{**ROWS[0], "customer_id": 1.5}]})
        other = client.post("/predict", json={"rows": [{**ROWS[0], "customer": "C-1"}]})
    assert answer.status_code == 200, answer.text
    assert [p.get("id") for p in answer.json()["predictions"]] == ["C-1", None, 7]
    assert "id" not in answer.json()["predictions"][1]  # not sent, not invented
    records = prediction_log.read(tmp_path)
    assert [r["id"] for r in records] == ["C-1", None, 7]
    assert [r["features"] for r in records] == ROWS  # the id is not a feature
    assert bad.status_code == 422 and bad.json()["detail"] == [
        {"row": 0, "field": "customer_id", "error": "must be text, an integer or null (the row's id)"}
    ]
    assert other.status_code == 422 and other.json()["detail"] == [
        {
            "row": 0,
            "field": "customer",
            "error": "unknown field: not a feature of the model (nor its id column, customer_id)",
        }
    ]


def test_prediction_log_rotates_by_size_and_by_day(tmp_path):
    now = [datetime(2026, 1, 1, 23, 59, 58, tzinfo=UTC)]
    log = PredictionLog(tmp_path, max_bytes=100, clock=lambda: now[0])
    line = {"x": "y" * 60}
    log.write([line])
    log.write([line])  # the first file is past 100 bytes after this one
    log.write([line])  # → a new file in the same second
    now[0] += timedelta(seconds=3)  # next UTC day
    log.write([line])
    log.close()
    names = [p.name for p in prediction_log.files(tmp_path)]
    assert names == [
        "predictions-20260101-235958.jsonl", "predictions-20260101-235958-1.jsonl", "predictions-20260102-000001.jsonl"
    ]  # fmt: skip
    assert len(prediction_log.read(tmp_path)) == 4


def test_log_writes_from_many_threads_stay_whole_lines(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=2_000)
    threads = [
        threading.Thread(target=lambda n=n: [log.write([{"n": n, "i": i, "pad": "z" * 50}]) for i in range(50)])
        for n in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    records = prediction_log.read(tmp_path)
    assert sorted((r["n"], r["i"]) for r in records) == [(n, i) for n in range(8) for i in range(50)]


# --- a real server -------------------------------------------------------------------------


def test_serve_options_are_checked_before_anything_starts(models, tmp_path, monkeypatch):
    from reprotab.serving.service import main

    monkeypatch.chdir(tmp_path)
    for argv in (
        ["--model", str(models[0]), "--canary-share", "1.5", "--canary-model", str(models[1])],
        ["--model", str(models[0]), "--max-rows", "0"],
        ["--model", str(models[0]), "--shadow", "v2", "--shadow-model", str(models[1])],
        ["--stage", "prod", "--model", str(models[0])],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2, argv


def test_a_canary_or_shadow_must_match_the_champions_columns_and_id(champion, challenger, tmp_path):
    """Rows are validated, echoed and logged by the champion's schema: a challenger that reads other
    columns, or names another id column, is refused at start-up with one message."""
    import copy
    import dataclasses

    from reprotab.errors import UserError

    def with_schema(**changes) -> Served:
        model = copy.copy(challenger.model)
        model.schema = dataclasses.replace(model.schema, **changes)
        return Served(model, challenger.info)

    config = ServiceConfig(log_dir=str(tmp_path))
    with pytest.raises(UserError, match=r"--canary: must take the same feature columns as the champion"):
        create_app(champion, config=config, canary=with_schema(numeric=champion.model.schema.numeric[:-1]))
    with pytest.raises(UserError, match=r"--shadow: must name the same id column as the champion\. Got 'None vs"):
        create_app(champion, config=config, shadow=with_schema(id_column=None))


def test_histograms_observed_at_once_equal_one_observe_per_value():
    """Telemetry counts a request's scores bucket by bucket (reprotab.serving.telemetry.observe_all);
    the exported histogram must be the one `observe` per value gives, values on a bound included."""
    import re

    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from reprotab.serving.telemetry import SCORE_BUCKETS, observe_all

    values = np.concatenate([np.random.default_rng(0).random(2000), SCORE_BUCKETS, [0.0, 2.0, -1.0]])
    one, bulk = CollectorRegistry(), CollectorRegistry()
    each = Histogram("s", "s", buckets=SCORE_BUCKETS, registry=one)
    for value in values:
        each.observe(value)
    observe_all(Histogram("s", "s", buckets=SCORE_BUCKETS, registry=bulk), values)
    observe_all(Histogram("t", "t", registry=bulk), np.array([]))  # nothing to count

    def samples(registry: CollectorRegistry) -> dict[str, float]:
        lines = generate_latest(registry).decode().splitlines()
        return {
            k: float(v) for k, v in (line.rsplit(" ", 1) for line in lines if re.match(r"s_(bucket|count|sum)", line))
        }

    exact, summed = samples(one), samples(bulk)
    assert {k: v for k, v in exact.items() if k != "s_sum"} == {k: v for k, v in summed.items() if k != "s_sum"}
    assert summed["s_sum"] == pytest.approx(exact["s_sum"], rel=1e-12)  # only the order of the additions differs


def test_a_missing_challenger_file_is_named_by_its_own_option_and_a_missing_log_dir_says_so(tmp_path):
    from reprotab.errors import UserError
    from reprotab.serving.deployment import Source, load_served
    from reprotab.serving.service import source_of

    source = source_of("canary", path=str(tmp_path / "challenger.zip"), version=None, stage=None)
    assert source is not None
    with pytest.raises(UserError, match=r"^--canary-model: file not found"):
        load_served(source)
    with pytest.raises(UserError, match=r"^--from-log: is not a directory: no prediction log here"):
        prediction_log.read_rows(tmp_path / "nowhere")
    assert Source(path="m.zip").flag == "--model"
