"""`reprotab canary decide --apply` on a real registry: a git + DVC repository whose GTO tags name
four commits (v1.0.0 to v1.0.3; the gate said yes at the first three, no at the last). No model is
trained: promote and its checks read only the tags, the gate decision at each commit and the pinned
reference. A truly better canary is promoted to prod, a truly worse one is withdrawn by giving
staging back to the champion, the gate's no stands; each tag's message keeps the decision's summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reprotab.registry import versions as registry
from reprotab.registry.canary import main
from reprotab.registry.state import gto_state
from tests.helpers import base_params, sh, tagged_registry
from tests.unit.monitoring.test_outcomes import simulate

pytestmark = pytest.mark.integration
GATE = {"v1.0.0": True, "v1.0.1": True, "v1.0.2": True, "v1.0.3": False}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tagged_registry(tmp_path_factory.mktemp("canary-registry"), {v: v.encode() for v in GATE}, gate=GATE)
    registry.promote(repo, version="v1.0.0", stage="prod")
    registry.promote(repo, version="v1.0.1", stage="staging")
    return repo


def decide(repo: Path, work: Path, *, champion: float, canary: float, versions: tuple[str, str]) -> tuple[int, dict]:
    """`canary decide --apply` on a fresh log of 2,000 labelled rows: (exit status, decision.json)."""
    truth = simulate(work / "log", rows=2000, champion=champion, canary=canary, versions=versions)
    truth.to_csv(work / "labels.csv", index=False)
    (work / "params.yaml").write_text(json.dumps(base_params(canary={"bootstrap": 300, "min_labels": 200})))
    args = ["decide", "--log", str(work / "log"), "--labels", str(work / "labels.csv"), "--params"]
    args += [str(work / "params.yaml"), "--repo", str(repo), "--out", str(work / "decision.json"), "--apply"]
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, json.loads((work / "decision.json").read_text())


def tags(repo: Path) -> list[str]:
    return sh(["git", "tag"], repo).stdout.split()


def summary(decision: dict) -> dict:
    return {k: decision[k] for k in ("verdict", "metric", "difference", "interval", "rows")}


def test_apply_promotes_a_better_canary_and_withdraws_a_worse_one(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the command logs to reports/logs of the current directory
    code, decision = decide(repo, tmp_path / "better", champion=0.4, canary=0.05, versions=("v1.0.0", "v1.0.1"))
    assert code == 0 and decision["verdict"] == "promote"
    assert gto_state(repo)[1] == {"prod": "v1.0.1", "staging": "v1.0.1"}
    event = registry.history(repo)[-1]
    assert (event["action"], event["version"], event["stage"]) == ("promote", "v1.0.1", "prod")
    assert event["canary"] == summary(decision) and event["replaces"] == "v1.0.0"
    assert decision["applied"].startswith("prod: v1.0.1 (was v1.0.0; tag model#prod#")
    assert "applied: prod: v1.0.1" in capsys.readouterr().out

    registry.promote(repo, version="v1.0.2", stage="staging")  # the next canary
    code, decision = decide(repo, tmp_path / "worse", champion=0.05, canary=0.4, versions=("v1.0.1", "v1.0.2"))
    assert code == 0 and (decision["verdict"], decision["rule"]) == ("roll back", "surely_worse")
    assert gto_state(repo)[1] == {"prod": "v1.0.1", "staging": "v1.0.1"}  # staging holds no canary any more
    event = registry.history(repo)[-1]
    assert (event["version"], event["stage"], event["canary"]) == ("v1.0.1", "staging", summary(decision))

    before = tags(repo)
    code, decision = decide(repo, tmp_path / "again", champion=0.05, canary=0.4, versions=("v1.0.1", "v1.0.2"))
    assert code == 2 and tags(repo) == before
    assert "staging holds v1.0.1, not the canary v1.0.2" in decision["applied"]
    assert "the canary may be withdrawn already" in capsys.readouterr().err


def test_the_gate_still_refuses_a_canary_it_said_no_to(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    registry.promote(repo, version="v1.0.3", stage="staging")
    now, before = gto_state(repo)[1], tags(repo)
    code, decision = decide(repo, tmp_path / "gated", champion=0.4, canary=0.05, versions=(now["prod"], "v1.0.3"))
    assert code == 2 and decision["verdict"] == "promote" and tags(repo) == before
    assert decision["applied"].startswith("refused: registry promote: v1.0.3 cannot go to prod: the gate said no")
    assert "cannot go to prod: the gate said no" in capsys.readouterr().err
    assert gto_state(repo)[1]["prod"] == now["prod"]
