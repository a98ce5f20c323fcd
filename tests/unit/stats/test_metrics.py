import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from reprotab.stats.metrics import Scored, better, binary_roc_auc, flatten, score_all


def test_binary_metrics_score_the_positive_class():
    scored = Scored(
        y_true=np.array([0, 0, 1, 1]),
        y_pred=np.array([0, 1, 1, 1]),
        proba=np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]]),
        positive=1,
    )
    values = score_all("classification", scored)
    assert values["precision"] == pytest.approx(2 / 3)
    assert values["recall"] == 1.0
    assert values["f1"] == pytest.approx(0.8)
    assert values["accuracy"] == 0.75
    assert values["roc_auc"] == 1.0 and values["pr_auc"] == 1.0


def test_positive_class_can_be_index_zero():
    scored = Scored(
        y_true=np.array([0, 0, 1, 1]),
        y_pred=np.array([0, 0, 0, 1]),
        proba=np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.2, 0.8]]),
        positive=0,
    )
    values = score_all("classification", scored)
    assert values["recall"] == 1.0 and values["precision"] == pytest.approx(2 / 3)


def test_multiclass_metrics_are_macro_averages():
    scored = Scored(
        y_true=np.array([0, 1, 2, 2]),
        y_pred=np.array([0, 1, 2, 1]),
        proba=np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.1, 0.5, 0.4]]),
    )
    values = score_all("classification", scored)
    assert values["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert values["roc_auc"] == 1.0


def test_regression_metrics():
    values = score_all("regression", Scored(y_true=np.array([1.0, 2.0, 3.0]), y_pred=np.array([1.0, 2.0, 5.0])))
    assert values == {
        "rmse": pytest.approx(np.sqrt(4 / 3), abs=1e-6),
        "mae": pytest.approx(2 / 3, abs=1e-6),
        "r2": pytest.approx(-1.0),
        "mape": pytest.approx((2 / 3) / 3, abs=1e-6),
    }


def test_mape_with_a_zero_truth_is_infinite_not_huge():
    values = score_all("regression", Scored(y_true=np.array([0.0, 2.0]), y_pred=np.array([1.0, 2.0])))
    assert values["mape"] == float("inf")


def test_probability_metrics_binary_and_multiclass():
    binary = Scored(
        y_true=np.array([0, 1]), y_pred=np.array([0, 1]), proba=np.array([[0.8, 0.2], [0.4, 0.6]]), positive=1
    )
    values = score_all("classification", binary)
    assert values["brier"] == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert values["log_loss"] == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2, abs=1e-6)
    multi = Scored(
        y_true=np.array([0, 1, 2]),
        y_pred=np.array([0, 1, 2]),
        proba=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5]]),
    )
    values = score_all("classification", multi)
    assert values["brier"] == pytest.approx((0 + 0 + 0.25 + 0.25) / 3, abs=1e-6)
    assert values["balanced_accuracy"] == 1.0


def test_float32_probabilities_score_without_warnings():
    """XGBoost's probabilities are float32: cast to float64 their rows miss 1 by ~1e-7."""
    proba = np.random.default_rng(0).dirichlet([1, 1, 1], size=500).astype(np.float32).astype(np.float64)
    y = np.random.default_rng(1).integers(0, 3, 500)
    scored = Scored(y_true=y, y_pred=proba.argmax(axis=1), proba=proba)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = score_all("classification", scored)
    assert values["log_loss"] == pytest.approx(skm.log_loss(y, proba / proba.sum(axis=1, keepdims=True)))


def test_better_follows_each_metrics_direction():
    assert better("roc_auc", 0.9, 0.8) and not better("roc_auc", 0.8, 0.9)
    assert better("rmse", 1.0, 2.0) and better("log_loss", 0.1, 0.2) and not better("brier", 0.3, 0.2)


def test_flatten_gives_dvclive_metric_names():
    nested = {"test": {"f1": 0.5, "at_0.5": {"f1": 0.25}}, "threshold": 0.3}
    assert flatten(nested) == {"test/f1": 0.5, "test/at_0.5/f1": 0.25, "threshold": 0.3}


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.booleans(), min_size=2, max_size=60),
    scores=st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, 1.0, 0.33, 0.7]), min_size=60, max_size=60),
)
def test_fast_binary_roc_auc_equals_scikit_learns_with_ties(labels, scores):
    y, s = np.array(labels), np.array(scores[: len(labels)])
    if y.all() or not y.any():  # undefined: whatever scikit-learn does (today a warning and NaN)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.isnan(binary_roc_auc(y, s)) and np.isnan(skm.roc_auc_score(y, s))
    else:
        assert binary_roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
