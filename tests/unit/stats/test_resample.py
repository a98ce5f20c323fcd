"""The bootstrap engine once: every weighted metric against scikit-learn on the rows repeated by
their counts, and the seeded counts; then the two thin APIs on top, the monitor's interval and the
gate's paired comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reprotab.stats import bootstrap, resample
from reprotab.stats.metrics import BY_TASK, Scored
from reprotab.stats.resample import count_blocks, paired_bootstrap, resample_counts, weighted


def binary(proba_positive: np.ndarray, truth: np.ndarray, positive: int = 1) -> Scored:
    p = np.asarray(proba_positive, dtype=float)
    predicted = np.where(p >= 0.5, 1, 0) if positive == 1 else np.where(p >= 0.5, 0, 1)
    proba = np.c_[1 - p, p] if positive == 1 else np.c_[p, 1 - p]
    return Scored(np.asarray(truth), predicted, proba, positive)


def scored_cases() -> list[tuple[str, Scored]]:
    rng = np.random.default_rng(0)
    n = 60
    p = rng.random(n).round(1)  # rounded: ties in the scores
    truth = (rng.random(n) < p).astype(int)
    proba3 = rng.dirichlet([1, 1, 1], n).round(2)
    proba3 /= proba3.sum(axis=1, keepdims=True)
    y = rng.normal(5, 1, n)
    return [
        ("classification", binary(p, truth)),
        ("classification", binary(p, 1 - truth, positive=0)),  # positive class 0
        ("classification", Scored(rng.integers(0, 3, n), proba3.argmax(axis=1), proba3)),
        ("regression", Scored(y, y + rng.normal(0, 0.5, n))),
    ]


@pytest.mark.parametrize(("task", "scored"), scored_cases())
def test_weighted_metrics_equal_sklearn_on_the_repeated_rows(task, scored):
    rows = len(scored.y_true)
    counts = np.vstack([np.ones(rows), resample_counts(np.random.default_rng(1), 4, rows)])  # unit weights too
    for name, metric in BY_TASK[task].items():
        got = weighted(name, scored, counts)
        for row, weights in zip(got, counts, strict=True):
            index = np.repeat(np.arange(rows), weights.astype(int))
            proba = None if scored.proba is None else scored.proba[index]
            expected = metric(Scored(scored.y_true[index], scored.y_pred[index], proba, scored.positive))
            assert row == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def test_undefined_resamples_are_nan_and_mape_of_a_true_zero_infinite():
    one_class = binary(np.array([0.2, 0.7, 0.9]), np.array([0, 1, 1]))
    assert np.isnan(weighted("roc_auc", one_class, np.array([[0, 2, 1], [1, 1, 1]]))).tolist() == [True, False]
    values = Scored(np.array([0.0, 2.0, 4.0]), np.array([1.0, 2.0, 5.0]))
    assert weighted("mape", values, np.array([[1, 1, 1], [0, 1, 2]])).tolist() == [math.inf, 0.5 / 3]
    assert np.isnan(weighted("r2", values, np.array([[0, 3, 0]])))[0]  # one value drawn: no R²


def test_log_loss_scores_probability_rows_rescaled_to_sum_to_one_as_metrics_does():
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([1, 1, 1, 1], 50).astype(np.float32).astype(float)  # float32 rows: sums off 1
    scored = Scored(rng.integers(0, 4, 50), proba.argmax(axis=1), proba)
    expected = BY_TASK["classification"]["log_loss"](scored)
    assert weighted("log_loss", scored, np.ones((1, 50)))[0] == pytest.approx(expected, rel=1e-12)


def test_counts_are_seeded_and_do_not_depend_on_the_block_size(monkeypatch):
    whole = np.vstack(list(count_blocks(7, samples=30, seed=5)))
    assert whole.shape == (30, 7) and (whole.sum(axis=1) == 7).all()
    monkeypatch.setattr(resample, "CELLS", 7 * 4)  # blocks of 4 resamples
    blocks = list(count_blocks(7, samples=30, seed=5))
    assert [len(b) for b in blocks] == [4] * 7 + [2]
    assert np.array_equal(np.vstack(blocks), whole)


# --- the monitor's interval -----------------------------------------------------------------------


def noisy(rows: int, noise: float, seed: int) -> Scored:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    return binary(1 / (1 + np.exp(-4 * (truth + rng.normal(0, noise, rows) - 0.5))), truth)


def test_interval_is_seeded_and_brackets_the_metric():
    scored = noisy(300, 0.8, 1)
    first = bootstrap.interval(scored, metric="roc_auc", task="classification", samples=200, seed=4)
    assert first == bootstrap.interval(scored, metric="roc_auc", task="classification", samples=200, seed=4)
    assert first[0] < BY_TASK["classification"]["roc_auc"](scored) < first[1]
    assert bootstrap.interval(scored, metric="roc_auc", task="classification", samples=0, seed=4) is None


def test_interval_drops_multiclass_resamples_that_miss_a_class():
    """Three rows, one per class: only the resamples that draw each row once keep a macro ROC-AUC."""
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    scored = Scored(np.array([0, 1, 2]), proba.argmax(axis=1), proba)
    assert bootstrap.interval(scored, metric="roc_auc", task="classification", samples=100, seed=0) == [1.0, 1.0]
    assert bootstrap.interval(scored, metric="roc_auc", task="classification", samples=3, seed=0) is None


def test_interval_of_mape_with_a_true_zero_is_undefined():
    values = Scored(np.array([0.0, 2.0, 4.0, 5.0]), np.array([1.0, 2.0, 5.0, 5.0]))
    low, high = bootstrap.interval(values, metric="mape", task="regression", samples=50, seed=0)
    assert math.isnan(low) and math.isnan(high)


# --- the gate's paired comparison -----------------------------------------------------------------


def test_paired_bootstrap_is_seeded_and_pairs_the_resamples():
    good, other = noisy(2000, 0.6, 0), noisy(2000, 0.7, 0)
    first = paired_bootstrap("roc_auc", good, other, samples=300, confidence=0.9, seed=7)
    assert first == paired_bootstrap("roc_auc", good, other, samples=300, confidence=0.9, seed=7)
    assert first["lower"] < first["mean"] < first["upper"] and first["used"] == 300
    same = paired_bootstrap("log_loss", good, good, samples=50, confidence=0.9, seed=7)
    assert same == {"lower": 0.0, "upper": 0.0, "mean": 0.0, "used": 50}  # the same rows each time: no noise
