"""The pure pieces of `reprotab retrain`: batch names, the add / already added / conflict decision,
the comment-keeping params edit and the summary page."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest
import yaml

from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.retrain.steps import StepFailed, combine_changes
from reprotab.retrain.summary import batch_action, batch_name, first_reason, markdown, set_value
from tests.helpers import ROOT, base_params

ROWS = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})


def test_the_batch_is_named_by_its_file_stem():
    assert batch_name("data/incoming/2026-11.parquet") == "2026-11"
    assert batch_name("/tmp/nov_b.csv") == "nov_b"
    with pytest.raises(UserError, match=r"--batch: file name must be letters.*Got 'nov 2026.csv'"):
        batch_name("nov 2026.csv")


def test_a_new_batch_is_added_and_the_same_rows_are_already_added(tmp_path):
    source, dest = tmp_path / "2026-11.parquet", tmp_path / "batches" / "2026-11.parquet"
    ROWS.to_parquet(source, index=False)
    assert batch_action(source, dest, source_rows=ROWS, dest_rows=None) == "add"
    dest.parent.mkdir()
    dest.write_bytes(source.read_bytes())
    assert batch_action(source, dest, source_rows=ROWS, dest_rows=ROWS) == "already added"
    csv = tmp_path / "2026-11.csv"  # the same table exported as CSV: still the same batch
    ROWS.to_csv(csv, index=False)
    assert batch_action(csv, dest, source_rows=pd.read_csv(csv), dest_rows=ROWS) == "already added"
    assert batch_action(dest, dest, source_rows=ROWS, dest_rows=ROWS) == "already added"


def test_other_rows_under_a_batch_name_already_used_are_refused(tmp_path):
    source, dest = tmp_path / "2026-11.parquet", tmp_path / "old.parquet"
    other = ROWS.assign(a=[1, 2, 4])
    other.to_parquet(source, index=False)
    ROWS.to_parquet(dest, index=False)
    with pytest.raises(UserError, match=r"a different batch is already versioned as .*old.parquet.*never overwritten"):
        batch_action(source, dest, source_rows=other, dest_rows=ROWS)


def test_set_value_edits_one_key_and_keeps_every_comment():
    text = (ROOT / "params.yaml").read_text()
    edited = set_value(text, "data.batches.combine", "all")
    changed = [(a, b) for a, b in zip(text.splitlines(), edited.splitlines(), strict=True) if a != b]
    assert len(changed) == 1
    old, new = changed[0]
    assert new.strip().startswith("combine: all") and new.index("#") == old.index("#")
    assert parse_params(yaml.safe_load(edited)).data.batches.combine == "all"
    assert parse_params(yaml.safe_load(set_value(text, "train.init_model", "models/previous.zip"))).train.init_model
    assert set_value("a:\n  b: 1\n", "a.b", "2") == "a:\n  b: 2\n"
    with pytest.raises(UserError, match=r"params\.yaml: has no key data\.batches\.nope"):
        set_value(text, "data.batches.nope", "1")
    with pytest.raises(UserError, match="is a section, not a single value"):
        set_value(text, "data.batches", "1")


def test_combine_none_becomes_all_and_other_choices_stay(tmp_path):
    assert combine_changes(tmp_path, parse_params(base_params())) == {"data.batches.combine": "all"}
    window = base_params(data={**base_params()["data"], "batches": {"dir": "data/batches", "combine": "window"}})
    assert combine_changes(tmp_path, parse_params(window)) == {}
    (tmp_path / "data" / "parts").mkdir(parents=True)  # a folder data.path: a batch is a new partition
    folder = base_params(data={**base_params()["data"], "path": "data/parts"})
    assert combine_changes(tmp_path, parse_params(folder)) == {}


SUMMARY = {
    "batch": "2026-12",
    "source": "data/incoming/2026-12.parquet",
    "mode": "refit",
    "forced": False,
    "started": "2026-12-01T06:17:00+00:00",
    "outcome": "gate refused",
    "why": "roc_auc gain is within bootstrap noise; the champion (v1.0.0) keeps serving",
    "monitor": {"retrain": True, "reasons": ["5 of 16 features drifted (31% > 30%)"], "report": "m/drift.md"},
    "batch_added": "add",
    "batch_path": "data/batches/2026-12.parquet",
    "params_changes": ["data.batches.combine: all"],
    "trained_on": {
        "reference": {"path": "data/raw/churn.parquet", "rows": 1000, "sha256": "ab" * 32},
        "combine": "all",
        "batches": [{"name": "2026-12.parquet", "rows": 500, "sha256": "cd" * 32}],
        "rows": 1500,
    },
    "gate": {
        "promote": False,
        "reason": "roc_auc gain is within bootstrap noise",
        "champion": {"version": "v1.0.0"},
        "rules": [
            {
                "rule": "min_improvement",
                "metric": "roc_auc",
                "challenger": 0.8,
                "champion": 0.81,
                "value": -0.01,
                "required": 0.0,
                "verdict": "fail",
            }
        ],
    },
    "registry": {"action": "nothing registered: the gate refused"},
    "commits": [{"commit": "0123456789abcdef", "message": "Add batch 2026-12"}],
    "dvc_push": "pushed",
}


def test_the_summary_page_shows_verdict_data_gate_rules_and_registry():
    page = markdown(SUMMARY)
    assert page.startswith("# Retrain: 2026-12\n\n**gate refused**: roc_auc gain is within bootstrap noise")
    assert "retrain: **true**" in page and "- 5 of 16 features drifted (31% > 30%)" in page
    assert "params.yaml: data.batches.combine: all." in page
    assert "| data/raw/churn.parquet (reference) | 1000 | abababababab |" in page
    assert "| 2026-12.parquet | 500 | cdcdcdcdcdcd |" in page
    assert "| min_improvement | roc_auc | 0.8 | 0.81 | -0.01 | 0.0 | fail |" in page
    assert "nothing registered: the gate refused" in page
    assert "- `01234567` Add batch 2026-12" in page


def test_a_month_without_drift_has_a_short_page():
    quiet = {k: SUMMARY[k] for k in ("batch", "source", "mode", "started")}
    quiet |= {"outcome": "no retrain", "why": "the monitor found no reason to retrain", "commits": []}
    page = markdown(quiet | {"monitor": {"retrain": False, "reasons": [], "report": "m/drift.md"}})
    assert "**no retrain**" in page and "- no drift and no performance drop" in page
    assert "## Gate" not in page and "## Data" not in page


def test_a_failure_is_one_line_with_its_first_problem():
    listed = UserError("params.yaml has problems:\n  - model: auto cannot continue. Got 'auto'.\n  - seed: bad.")
    assert first_reason(listed) == "params.yaml has problems: model: auto cannot continue. Got 'auto'"
    assert (
        first_reason(StepFailed("`dvc repro` failed (exit 1):\nRunning stage 'validate':"))
        == "`dvc repro` failed (exit 1):"
    )
    assert first_reason(ValueError("")) == "ValueError"


def test_continue_with_model_auto_is_refused_before_anything_is_committed(tmp_path, monkeypatch):
    from reprotab.retrain.month import retrain

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base_params(model="auto", tuner="optuna")))
    batch = tmp_path / "2027-01.csv"
    batch.write_text("tenure_months\n3\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "params.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "params"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"retrain --mode continue: continues the prod champion's model family.*refit"):
        retrain(batch=batch, mode="continue")
    log = subprocess.run(["git", "log", "--oneline"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert log.count("\n") == 1 and not (tmp_path / "reports").exists()


@pytest.mark.parametrize(
    ("model", "tuner", "message"),
    [
        ("auto", "optuna", r"continues the prod champion.s model family, so params\.yaml must name it \(model: auto"),
        (
            "ensemble",
            "optuna",
            r"continues the prod champion.s model family, so params\.yaml must name it \(model: ens",
        ),
        ("linear", "none", r"needs a family that adds rounds or trees; linear has none to add.*--mode refit"),
    ],
)
def test_continue_is_refused_before_anything_for_a_model_it_cannot_continue(model, tuner, message):
    from reprotab.retrain.month import check_mode

    params = parse_params(base_params(model=model, tuner=tuner))
    with pytest.raises(UserError, match=rf"retrain --mode continue: {message}"):
        check_mode("continue", params)
    check_mode("refit", params)  # refit is always possible
    check_mode("continue", parse_params(base_params(model="catboost")))
