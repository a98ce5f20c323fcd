"""The stored drift reference (reprotab/monitoring/reference.py): what train writes reads back as
the same record, the monitor's verdict from it equals the one from the rows it summarizes, and a
file that is not one of this model is refused or replaced, never silently used."""

from __future__ import annotations

import json
import logging

import pytest

from reprotab.data.demo import generate
from reprotab.errors import UserError
from reprotab.monitoring.inputs import _reference, inputs
from reprotab.monitoring.reference import build, read
from reprotab.monitoring.verdict import monitor
from reprotab.params.sections import MonitorParams


def test_a_written_reference_reads_back_as_the_same_record(trained, workspace):
    stored = read(workspace / "models/reference.json", schema=trained.model.schema)
    again = build(trained.model, trained.splits["train"], trained.splits["test"], model_sha256=None, origin="")
    assert {**stored.as_dict(), "model_sha256": None} == json.loads(json.dumps(again.as_dict()))
    assert set(stored.features) == set(trained.model.schema.features) and stored.rows == len(trained.splits["train"])


def test_the_verdict_from_the_stored_reference_is_the_one_from_the_rows(trained, workspace):
    batch = generate(rows=2000, seed=11, drift=0.3)
    verdicts = [
        monitor(
            model=trained.model,
            reference=summary,
            batch=batch,
            config=MonitorParams(bootstrap=0),
            metric="roc_auc",
            seed=0,
        )
        for summary in (
            read(workspace / "models/reference.json", schema=trained.model.schema),
            build(trained.model, trained.splits["train"], trained.splits["test"], model_sha256=None, origin=""),
        )
    ]
    first, second = ({k: v for k, v in verdict.report.items() if k != "reference"} for verdict in verdicts)
    assert first == second and first["drifted"]


def test_the_workspace_monitor_reads_the_stored_reference_of_its_model(workspace):
    chosen = inputs()
    assert chosen.reference.origin == "models/reference.json"


def test_a_reference_of_another_model_file_is_rebuilt_from_the_splits(workspace, caplog):
    data = json.loads((workspace / "models/reference.json").read_text())
    (workspace / "models/reference.json").write_text(json.dumps({**data, "model_sha256": "0" * 64}))
    with caplog.at_level(logging.WARNING):
        chosen = inputs()
    assert chosen.reference.origin == "built from data/prepared/train.parquet and data/prepared/test.parquet"
    assert "is of another model file (sha256 000000000000" in caplog.text


def test_a_missing_reference_is_built_from_the_splits(workspace):
    (workspace / "models/reference.json").unlink()
    assert inputs().reference.origin.startswith("built from")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda data: "{not json", "is not JSON"),
        (lambda data: json.dumps({**data, "format": 9}), "is not a drift reference of format 1"),
        (
            lambda data: json.dumps({**data, "features": {**data["features"], "extra": data["scores"]}}),
            "differs on extra",
        ),
        (lambda data: json.dumps({k: v for k, v in data.items() if k != "scores"}), "scores must be an object"),
        (
            lambda data: json.dumps(
                {
                    **data,
                    "features": {**data["features"], "tenure_months": {"kind": "numeric", "rows": 1, "missing": -2}},
                }
            ),
            r"feature 'tenure_months' missing must be a count \(a whole number >= 0\)\. Got -2\.",
        ),
    ],
)
def test_a_damaged_reference_is_refused_with_one_line(workspace, damage, said):
    path = workspace / "models/reference.json"
    path.write_text(damage(json.loads(path.read_text())))
    with pytest.raises(UserError, match=said) as raised:
        inputs()
    assert str(raised.value).startswith("models/reference.json: ")
    assert "Run `dvc repro`" in str(raised.value)


def test_a_past_commits_damaged_reference_is_rebuilt_from_its_splits(trained, caplog):
    def tables():
        return trained.splits["train"], trained.splits["test"]

    with caplog.at_level(logging.WARNING):
        summary = _reference(
            trained.model,
            b"{not json",
            where="models/reference.json at 0123abcd",
            sha256=None,
            tables=tables,
            origin="the splits at 0123abcd",
            rebuild_damaged=True,
        )
    assert summary.origin == "built from the splits at 0123abcd" and summary.rows == len(trained.splits["train"])
    assert "models/reference.json at 0123abcd: is not JSON" in caplog.text
