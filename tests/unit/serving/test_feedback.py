"""POST /feedback in-process: labels are checked and stored (0600, ids hashed as the log hashes them),
scored against the predictions the service remembers, and the live guard stops a canary whose
live error passes the champion's."""

from __future__ import annotations

import json
import stat

import pytest
from fastapi.testclient import TestClient

from reprotab.params.sections import CanaryParams, PredictionLogParams
from reprotab.serving.prediction_log import hash_key, keyed_hash
from reprotab.serving.service import ServiceConfig, create_app
from tests.helpers import request_rows

pytest_plugins = ["tests.service_fixtures"]  # models, champion, challenger, client

ROWS = request_rows(60, seed=3)


def feedback_lines(directory) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("feedback-*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_labels_are_stored_0600_and_scored_against_remembered_predictions(champion, tmp_path):
    with TestClient(create_app(champion, config=ServiceConfig(log_dir=str(tmp_path)))) as client:
        rows = [{**row, "customer_id": f"C-{i}"} for i, row in enumerate(ROWS[:10])]
        answer = client.post("/predict", json={"rows": rows, "request_id": "r1"}).json()
        predicted = [p["prediction"] for p in answer["predictions"]]
        labels = [{"id": f"C-{i}", "label": predicted[i] if i < 7 else not predicted[i]} for i in range(10)]
        labels.append({"request_id": "r1", "position": 0, "label": predicted[0]})
        labels.append({"id": "never-served", "label": True})
        stored = client.post("/feedback", json={"labels": labels})
        metrics = client.get("/metrics").text
        meta = client.get("/metadata").json()
    assert stored.status_code == 200, stored.text
    assert stored.json()["received"] == 12 and stored.json()["matched"] == {"champion": 11}
    lines = feedback_lines(tmp_path / "feedback")
    assert [line["id"] for line in lines[:3]] == ["C-0", "C-1", "C-2"] and lines[-1]["id"] == "never-served"
    assert {line["key"] for line in lines} == {None}  # no keys configured
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "feedback").iterdir())
    assert meta["live_error"]["champion"] == pytest.approx(3 / 11)
    assert 'reprotab_feedback_total{route="champion"} 11.0' in metrics
    assert 'reprotab_live_error{route="champion"} 0.2727' in metrics


def test_hashed_ids_are_stored_as_the_prediction_log_stores_them(champion, tmp_path):
    config = ServiceConfig(log_dir=str(tmp_path), log=PredictionLogParams(hash=("id",)))
    with TestClient(create_app(champion, config=config)) as client:
        client.post("/predict", json={"rows": [{**ROWS[0], "customer_id": 42}]})
        assert client.post("/feedback", json={"labels": [{"id": "42", "label": True}]}).status_code == 200
    expected = keyed_hash(hash_key(tmp_path), 42)
    assert feedback_lines(tmp_path / "feedback")[0]["id"] == expected
    logged = json.loads(next(tmp_path.glob("predictions-*.jsonl")).read_text().splitlines()[0])
    assert logged["id"] == expected  # the two still join


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"labels": [{"id": "a", "label": "maybe"}]}, "label", "must be one of the model's classes"),
        ({"labels": [{"label": True}]}, "id", "give the row's id or its request_id"),
        ({"labels": [{"id": 1.5, "label": True}]}, "id", "must be text or an integer"),
        ({"labels": [{"request_id": "r", "position": -1, "label": True}]}, "position", "must be a row position"),
        ({"labels": [{"id": "a", "label": True, "extra": 1}]}, None, 'must be {"id" or "request_id"'),
        ({"labels": []}, "labels", "empty"),
        ({"rows": []}, None, "body must be"),
    ],
)
def test_bad_labels_are_422_in_the_envelope(client, body, field, error):
    answer = client.post("/feedback", json=body)
    assert answer.status_code == 422 and answer.headers["x-model-version"]
    detail = answer.json()["detail"]
    assert detail[0]["field"] == field and detail[0]["error"].startswith(error), detail


def test_the_live_guard_stops_a_canary_that_is_worse_and_routes_all_to_the_champion(champion, challenger, tmp_path):
    canary = CanaryParams(max_worsening=0.2, auto_rollback=True, min_labels=50)
    config = ServiceConfig(log_dir=str(tmp_path), canary_share=0.5, canary=canary)
    with TestClient(create_app(champion, config=config, canary=challenger)) as client:
        served = []
        for i in range(400):
            row = {**ROWS[i % len(ROWS)], "customer_id": f"C-{i}"}
            answer = client.post("/predict", json={"rows": [row], "request_id": f"g-{i}"}).json()
            served.append((f"C-{i}", answer["route"], answer["predictions"][0]["prediction"]))
        # the truth: the champion is always right, the canary always wrong
        labels = [{"id": i, "label": p if route == "champion" else not p} for i, route, p in served]
        client.post("/feedback", json={"labels": labels[:20]})
        assert client.get("/metadata").json()["canary"]["stopped"] is None  # too few labels to judge
        client.post("/feedback", json={"labels": labels[20:]})
        meta = client.get("/metadata").json()
        after = {
            client.post("/predict", json={"rows": ROWS[:1], "request_id": f"h-{i}"}).json()["route"] for i in range(50)
        }
    assert "worse by more than canary.max_worsening (0.2)" in meta["canary"]["stopped"]
    assert meta["live_error"] == {"champion": 0.0, "canary": 1.0}
    assert after == {"champion"}


def test_without_auto_rollback_the_guard_only_reports(champion, challenger, tmp_path):
    config = ServiceConfig(log_dir=str(tmp_path), canary_share=0.5, canary=CanaryParams(max_worsening=0.2))
    with TestClient(create_app(champion, config=config, canary=challenger)) as client:
        labels = []
        for i in range(300):
            answer = client.post(
                "/predict", json={"rows": [{**ROWS[i % 60], "customer_id": i}], "request_id": f"n-{i}"}
            )
            p = answer.json()["predictions"][0]["prediction"]
            labels.append({"id": i, "label": p if answer.json()["route"] == "champion" else not p})
        client.post("/feedback", json={"labels": labels})
        meta = client.get("/metadata").json()
    assert meta["canary"]["stopped"] is None and meta["live_error"]["canary"] == 1.0
