"""The gate's frozen reference set and undefined metrics, on hand-built predictions: a challenger
that looks better on the (poisoned) test rows but worse on the frozen rows is refused, and a metric
that is NaN fails its rule instead of passing it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reprotab.data.tables import frame_hash
from reprotab.errors import UserError
from reprotab.params.sections import GateParams
from reprotab.registry import gate
from reprotab.registry.champion import read_pin
from reprotab.registry.gate_decision import decision_markdown
from tests.unit.registry.test_gate import PIN, binary, noisy_scores


def rules(**overrides) -> GateParams:
    settings = {"bootstrap": {"samples": 0}, "reference_guards": {"roc_auc": 0.01, "log_loss": 0.02}}
    return GateParams(**{**settings, **overrides})


def judge(challenger, champion, reference_challenger=None, reference_champion=None, **overrides) -> dict:
    return gate.decide_promotion(
        task="classification",
        metric="roc_auc",
        rules=rules(**overrides),
        seed=0,
        challenger=challenger,
        champion=champion,
        pin=PIN,
        reference_challenger=reference_challenger,
        reference_champion=reference_champion,
    )


def test_better_on_the_test_rows_but_worse_on_the_frozen_reference_is_refused():
    truth, good = noisy_scores(400, 0.3, seed=1)
    _, bad = noisy_scores(400, 1.5, seed=1)
    decision = judge(binary(good, truth), binary(bad, truth), binary(bad, truth), binary(good, truth))
    assert decision["promote"] is False
    failed = {r["rule"] for r in decision["rules"] if r["verdict"] == "fail"}
    assert failed == {"reference_roc_auc", "reference_log_loss"}
    assert "worse by" in decision["reason"] and "frozen reference set" in decision["reason"]
    # the same challenger, as good on the reference as the champion: promoted
    passed = judge(binary(good, truth), binary(bad, truth), binary(good, truth), binary(good, truth))
    assert passed["promote"] is True, passed["reason"]
    assert {r["rule"] for r in passed["rules"]} >= {"reference_roc_auc", "reference_log_loss"}


def test_a_reference_guard_of_the_other_task_is_skipped():
    truth, good = noisy_scores(200, 0.3, seed=2)
    decision = judge(
        binary(good, truth),
        binary(good * 0.9, truth),
        binary(good, truth),
        binary(good, truth),
        reference_guards={"r2": 0.0},
    )
    assert not [r for r in decision["rules"] if r["rule"].startswith("reference_")]


def test_a_challenger_that_cannot_score_the_reference_is_refused_with_the_reason():
    truth, good = noisy_scores(200, 0.3, seed=3)
    why = "the frozen reference set lacks columns the challenger needs (new_col)"
    decision = judge(binary(good, truth), binary(good * 0.5, truth), why, None)
    assert decision["promote"] is False and why in decision["reason"]


def test_an_undefined_metric_fails_its_rule_never_passes():
    """Labels of one class: ROC-AUC is NaN for both models; NaN compared with anything is False,
    which used to read as 'not worse' in a guard. Every rule on it must fail, and say why."""
    truth = np.ones(50, dtype=int)
    rng = np.random.default_rng(0)
    challenger, champion = binary(rng.random(50), truth), binary(rng.random(50), truth)
    decision = judge(challenger, champion, reference_guards={}, guards={"roc_auc": 0.5}, min_improvement=0.0)
    assert decision["promote"] is False
    undefined = [r for r in decision["rules"] if r.get("undefined")]
    assert {r["rule"] for r in undefined} == {"min_improvement", "guard_roc_auc"}
    assert all(r["verdict"] == "fail" and r["challenger"] is None for r in undefined)
    assert "roc_auc is undefined on the test rows" in decision["reason"]
    assert "| min_improvement | roc_auc | None |" in decision_markdown(
        {**decision, "test_rows": 50, "test_rows_hash": "x"}
    )


def test_the_pin_reference_must_name_commit_path_and_hash(tmp_path):
    path = tmp_path / "champion.json"
    path.write_text('{"version": "v1.0.0", "commit": "%s", "reference": {"commit": "b"}}' % ("a" * 40))
    with pytest.raises(UserError, match=r"champion.json reference: must hold commit, path and rows_hash"):
        read_pin(path)
    frame = pd.DataFrame({"x": [1, 2]})
    good = {"commit": "b" * 40, "path": "data/prepared/test.parquet", "rows": 2, "rows_hash": frame_hash(frame)}
    path.write_text(pd.Series({"version": "v1.0.0", "commit": "a" * 40, "reference": good}).to_json())
    assert read_pin(path).reference.rows_hash == frame_hash(frame)
    assert read_pin(path).reference.to_dict() == good  # written back as it was read


def test_reference_rows_that_reach_training_fail_the_gate():
    """A batch re-sending old rows, or a changed seed, puts reference rows into training; duplicates
    the data already had when the reference was frozen do not count."""
    from reprotab.registry.gate import leak_check
    from reprotab.registry.reference import overlap

    reference = pd.DataFrame({"id": range(200), "x": np.arange(200) * 1.5, "y": [0, 1] * 100})
    training = pd.DataFrame({"id": range(1000, 1500), "x": np.arange(500) * 1.5 + 1000, "y": [1, 0] * 250})
    assert overlap(reference, training, id_column="id") == 0
    assert leak_check(reference, training, in_training=0, id_column="id")["verdict"] == "pass"
    resent = pd.concat([training, reference.head(3).assign(id=[7, 8, 9])], ignore_index=True)  # other ids, same rows
    assert overlap(reference, resent, id_column="id") == 3
    check = leak_check(reference, resent, in_training=0, id_column="id")
    assert check["verdict"] == "fail" and check["value"] == 3 and check["required"] == 2
    assert "3 rows of the frozen reference set are now also training rows" in check["reason"]
    assert leak_check(reference, resent, in_training=3, id_column="id")["verdict"] == "pass"  # there from the start
    again = reference.head(3).assign(x=lambda f: f["x"] + 0.5)  # the same customers, new values: not a leak
    assert overlap(reference, pd.concat([training, again]), id_column="id") == 0
