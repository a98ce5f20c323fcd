"""The gate's decision and the champion pin as records: each is written and read in one place,
read back as written, and a hand-broken file is one clear error wherever it is read."""

from __future__ import annotations

import json
import subprocess

import pytest

from reprotab import paths, vcs
from reprotab.data.tables import write_json
from reprotab.errors import UserError
from reprotab.registry.champion import ChampionPin, FrozenReference, read_pin
from reprotab.registry.gate_decision import GateDecision, write_decision
from tests.helpers import tool_env

DECISION = {
    "test_rows": 400,
    "test_rows_hash": "fed857e8d823b263",
    "challenger_md5": "39d5872d76002483cbcad6f7db3cdb55",
    "metric": "roc_auc",
    "higher_is_better": True,
    "challenger_metrics": {"roc_auc": 0.81},
    "promote": False,
    "reason": "roc_auc gain is within bootstrap noise",
    "champion": {"version": "v1.0.0", "commit": "a" * 40, "md5": "b" * 32},
    "champion_metrics": {"roc_auc": 0.8},
    "improvement": 0.01,
    "bootstrap": None,
    "rules": [{"rule": "min_improvement", "metric": "roc_auc", "verdict": "fail"}],
}


def test_a_decision_is_written_as_the_gate_made_it_and_read_back_typed(tmp_path):
    write_decision(DECISION, tmp_path)
    expected = tmp_path / "expected.json"
    write_json(DECISION, expected)
    assert (tmp_path / "decision.json").read_bytes() == expected.read_bytes()
    assert (tmp_path / "decision.md").read_text().startswith("# Gate: KEEP THE CHAMPION")
    read = GateDecision.from_json(tmp_path / "decision.json")
    assert (read.promote, read.reason, read.champion_version) == (False, DECISION["reason"], "v1.0.0")
    assert read.challenger_md5 == DECISION["challenger_md5"] and read.reference is None
    assert read.rules[0]["verdict"] == "fail" and read.to_dict() == DECISION
    assert read.summary() == {"promote": False, "reason": DECISION["reason"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"promote": "yes"}, "promote must be true or false"),
        ({"reason": None}, "reason must be text"),
        ({"champion": "v1"}, "champion must be an object"),
        ({"rules": [{"rule": "min_improvement", "verdict": "maybe"}]}, "rules must be a list"),
        ({"reference": []}, "reference must be an object"),
    ],
)
def test_a_broken_decision_is_one_clear_error(tmp_path, change, message):
    path = tmp_path / "decision.json"
    path.write_text(json.dumps({**DECISION, **change}))
    with pytest.raises(UserError, match=rf"decision\.json: is not a gate decision: {message}"):
        GateDecision.from_json(path)
    path.write_text("{oops")
    with pytest.raises(UserError, match=r"decision\.json: is not valid JSON"):
        GateDecision.from_json(path)


def test_the_decision_at_a_commit_is_read_through_git(tmp_path, monkeypatch):
    for key, value in tool_env().items():
        if key.startswith("GIT_"):
            monkeypatch.setenv(key, value)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / "README.md").write_text("a\n")
    vcs.git("add", "-A", cwd=tmp_path)
    vcs.git("commit", "-q", "-m", "no decision yet", cwd=tmp_path)
    before = vcs.git("rev-parse", "HEAD", cwd=tmp_path)
    write_decision(DECISION, tmp_path / paths.GATE_DIR)
    vcs.git("add", "-A", cwd=tmp_path)
    vcs.git("commit", "-q", "-m", "gate", cwd=tmp_path)
    after = vcs.git("rev-parse", "HEAD", cwd=tmp_path)
    assert GateDecision.at_commit(tmp_path, before) is None
    assert GateDecision.at_commit(tmp_path, after).to_dict() == DECISION


def test_the_champion_pin_is_written_and_read_back_as_one_record(tmp_path):
    path = tmp_path / "champion.json"
    assert read_pin(path) == ChampionPin()
    assert ChampionPin().to_dict() == {"version": None}
    frozen = FrozenReference(commit="c" * 40, path=paths.TEST, rows=10, rows_hash="h", in_training=2)
    pin = ChampionPin(version="v1.0.1", commit="d" * 40, reference=frozen)
    pin.write(path)
    assert list(json.loads(path.read_text())) == ["version", "commit", "reference"]
    assert list(json.loads(path.read_text())["reference"]) == ["commit", "path", "rows", "rows_hash", "in_training"]
    assert read_pin(path) == pin
    with pytest.raises(AttributeError):
        pin.version = "v9"  # frozen
