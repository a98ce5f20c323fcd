"""The gate on hand-built predictions: worse, equal, clearly better, and better only within
the bootstrap noise. The resampling engine under it is tested in tests/unit/stats/test_resample.py."""

from __future__ import annotations

import numpy as np
import pytest

from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.params.sections import GateParams
from reprotab.registry.champion import ChampionPin, read_pin
from reprotab.registry.gate import decide_promotion
from reprotab.registry.gate_decision import decision_markdown
from reprotab.stats.metrics import Scored
from tests.helpers import base_params

PIN = {"version": "v1.0.0", "commit": "a" * 40}


def binary(proba_positive: np.ndarray, truth: np.ndarray) -> Scored:
    p = np.asarray(proba_positive, dtype=float)
    return Scored(y_true=np.asarray(truth), y_pred=(p >= 0.5).astype(int), proba=np.c_[1 - p, p], positive=1)


def noisy_scores(rows: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Truth and probabilities whose quality falls as `noise` rises."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    score = truth + rng.normal(0, noise, rows)
    return truth, 1 / (1 + np.exp(-4 * (score - 0.5)))


def gate(challenger: Scored, champion: Scored | None, **rules) -> dict:
    return decide_promotion(
        task="classification",
        metric=rules.pop("metric", "roc_auc"),
        rules=GateParams(**rules),
        seed=0,
        challenger=challenger,
        champion=champion,
        pin=PIN,
    )


def test_no_champion_promotes_the_first_model():
    truth, p = noisy_scores(50, 0.5, 0)
    decision = gate(binary(p, truth), None)
    assert decision["promote"] is True
    assert "no champion" in decision["reason"]


def test_worse_and_equal_challengers_keep_the_champion():
    truth, good = noisy_scores(400, 0.4, 0)
    _, bad = noisy_scores(400, 1.5, 0)
    worse = gate(binary(bad, truth), binary(good, truth))
    assert worse["promote"] is False
    assert {r["rule"]: r["verdict"] for r in worse["rules"]}["min_improvement"] == "fail"
    assert worse["bootstrap"]["upper"] < 0  # the whole interval below 0: worse, not noise
    assert "roc_auc is significantly worse than the champion's" in worse["reason"]
    assert "noise" not in worse["reason"]
    equal = gate(binary(good, truth), binary(good, truth))
    assert equal["promote"] is False  # a zero gain has a zero lower bound, which is not above zero
    assert equal["bootstrap"]["lower"] == 0 and "bootstrap noise" in equal["reason"]


def test_clearly_better_challenger_passes_every_rule():
    truth, good = noisy_scores(400, 0.4, 0)
    _, bad = noisy_scores(400, 1.5, 0)
    decision = gate(binary(good, truth), binary(bad, truth), min_improvement=0.05, guards={"log_loss": 0.01})
    assert decision["promote"] is True, decision["reason"]
    rules = {r["rule"]: r for r in decision["rules"]}
    assert set(rules) == {"bootstrap_lower_bound", "min_improvement", "guard_log_loss"}
    assert all(r["verdict"] == "pass" for r in rules.values())
    assert rules["min_improvement"]["challenger"] > rules["min_improvement"]["champion"]
    assert rules["guard_log_loss"]["value"] < 0  # log-loss fell: lower is better, so no worsening
    assert "| bootstrap_lower_bound | roc_auc |" in decision_markdown(
        {**decision, "test_rows": 400, "test_rows_hash": "x"}
    )


def test_a_gain_inside_the_bootstrap_noise_does_not_pass():
    """Champion and challenger differ by a few flipped scores on a small test set: the full-set
    metric is better, the bootstrap interval straddles zero."""
    truth, p = noisy_scores(60, 0.8, 3)
    better = p.copy()
    better[truth == 1] = np.maximum(better[truth == 1], np.sort(p[truth == 1])[2])  # lift the 2 lowest positives
    decision = gate(binary(better, truth), binary(p, truth))
    rules = {r["rule"]: r for r in decision["rules"]}
    assert rules["min_improvement"]["verdict"] == "pass" and rules["min_improvement"]["value"] > 0
    assert rules["bootstrap_lower_bound"]["verdict"] == "fail"
    assert decision["promote"] is False
    assert rules["bootstrap_lower_bound"]["value"] <= 0 < rules["bootstrap_lower_bound"]["upper"]
    assert "roc_auc gain is within bootstrap noise" in decision["reason"]


def test_lower_is_better_metric_and_guards_are_direction_aware():
    truth, good = noisy_scores(400, 0.4, 0)
    _, bad = noisy_scores(400, 1.5, 0)
    better = gate(binary(good, truth), binary(bad, truth), metric="log_loss")
    assert better["promote"] is True and better["improvement"] > 0
    # a better roc_auc that costs more log-loss than the guard allows is blocked by the guard
    sharp = np.clip(np.where(good > 0.5, 0.999, 0.001), 0, 1)
    guarded = gate(binary(sharp, truth), binary(good, truth), guards={"log_loss": 0.01}, bootstrap={"samples": 0})
    assert {r["rule"]: r["verdict"] for r in guarded["rules"]}["guard_log_loss"] == "fail"
    assert guarded["promote"] is False and "log_loss worsens" in guarded["reason"]


def test_min_relative_improvement():
    truth, good = noisy_scores(400, 0.4, 0)
    _, bad = noisy_scores(400, 1.5, 0)
    decision = gate(binary(good, truth), binary(bad, truth), min_relative_improvement=10.0)
    assert {r["rule"]: r["verdict"] for r in decision["rules"]}["min_relative_improvement"] == "fail"


def test_gate_params_are_checked_against_the_task():
    with pytest.raises(
        UserError, match=r"gate\.metric \(task classification\): must be one of .*Did you mean 'roc_auc'"
    ):
        parse_params(base_params(gate={"metric": "roc_aux"}))
    with pytest.raises(UserError, match=r"gate\.guards\.logloss: must be one of .*Did you mean 'log_loss'"):
        parse_params(base_params(gate={"guards": {"logloss": 0.1}}))
    # the shipped log_loss guard is skipped, not an error, for regression
    assert parse_params(base_params(task="regression", metric="rmse")).gate.guards == {"log_loss": 0.01}


def test_champion_pin_is_checked(tmp_path):
    pin = tmp_path / "champion.json"
    assert read_pin(pin) == ChampionPin(version=None)
    pin.write_text('{"version": "v1.0.0"}')
    with pytest.raises(UserError, match=r"champion\.json: must be \{\"version\": \"vX\.Y\.Z\", \"commit\""):
        read_pin(pin)
    pin.write_text("{oops")
    with pytest.raises(UserError, match=r"is not valid JSON"):
        read_pin(pin)
