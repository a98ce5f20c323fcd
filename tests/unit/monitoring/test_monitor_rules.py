"""The monitor's rules on small hand-made inputs: label drift, per-metric tolerances, undefined
metrics as blockers, and strict JSON in drift.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.tables import write_json
from reprotab.errors import UserError
from reprotab.monitoring.verdict import judge, monitor
from reprotab.params.loader import parse_params
from reprotab.params.sections import MonitorParams
from reprotab.pipeline import run
from reprotab.stats.drift import class_share_drift, target_shift
from reprotab.stats.sketch import numeric_sketch
from tests.helpers import base_params, reference_of

RULES = {"max_share_change": 0.4, "min_rows": 50, "min_reference_share": 0.01}
CLASSES = ["False", "True"]


def codes(false: int, true: int) -> np.ndarray:
    return np.array([0] * false + [1] * true)


def counts(false: int, true: int) -> np.ndarray:
    return np.array([false, true])


# --- label drift ---------------------------------------------------------------------------------


def test_the_demo_months_strong_churn_rise_is_not_label_drift():
    found = class_share_drift(counts(93, 7), codes(62, 38), classes=CLASSES, **RULES)  # 7% -> 38%
    assert found["drifted"] is False and found["reason"] is None
    assert found["shares"]["True"] == {"reference": 0.07, "batch": 0.38, "change": 0.31}
    assert found["p_value"] < 1e-6  # significant, yet a real month: the p-value is reported, not used


def test_a_batch_of_one_class_is_label_drift():
    found = class_share_drift(counts(93, 7), codes(0, 120), classes=CLASSES, **RULES)  # a broken join: all True
    assert found["drifted"] is True
    assert found["reason"].startswith("every labeled row (120) is class 'True'")
    assert "class 'True' share 0.070 -> 1.000" in found["reason"]


def test_a_share_that_moves_too_far_is_label_drift():
    assert class_share_drift(counts(50, 50), codes(5, 95), classes=CLASSES, **RULES)["drifted"] is True
    assert class_share_drift(counts(50, 50), codes(15, 85), classes=CLASSES, **RULES)["drifted"] is False


def test_an_absent_class_is_label_drift_only_on_enough_rows():
    reference = np.array([50, 45, 5])  # class 2 holds 5% of the reference
    classes = ["a", "b", "c"]
    big, small = np.array([0] * 30 + [1] * 30), np.array([0] * 20 + [1] * 20)
    found = class_share_drift(reference, big, classes=classes, **RULES)
    assert found["drifted"] and found["reason"] == "class 'c' (5.0% of the reference) is absent from 60 labeled rows"
    assert class_share_drift(reference, small, classes=classes, **RULES)["drifted"] is False


def test_regression_target_shift_and_constant_target():
    values = np.arange(100.0)  # mean 49.5, std 28.87
    reference = numeric_sketch(values)
    assert target_shift(reference, values + 10, max_mean_shift=1.0, max_rows=1000, seed=0)["drifted"] is False
    moved = target_shift(reference, values + 40, max_mean_shift=1.0, max_rows=1000, seed=0)
    assert moved["drifted"] and moved["mean_shift_sd"] == pytest.approx(40 / values.std(), abs=1e-6)
    assert moved["reference"] == {"mean": 49.5, "std": round(values.std(), 6), "min": 0.0, "max": 99.0}
    constant = target_shift(reference, np.full(20, 49.5), max_mean_shift=1.0, max_rows=1000, seed=0)
    assert constant["reason"] == "the target is constant (49.5) over 20 labeled rows"


# --- tolerances and undefined metrics ---------------------------------------------------------------


def test_judge_is_direction_aware_and_never_calls_nan_fine():
    assert judge("log_loss", 0.71, 0.35, None, 0.1)["dropped"] is True  # lower is better: up is worse
    assert judge("log_loss", 0.30, 0.35, None, 0.1)["dropped"] is False
    assert judge("roc_auc", 0.80, 0.85, [0.79, 0.84], 0.02)["dropped"] is False  # the interval's better end
    undefined = judge("roc_auc", math.nan, 0.85, None, 0.02)
    assert undefined["undefined"] is True and undefined["worse_by"] is None


def test_tolerances_are_params_checked():
    parsed = parse_params(base_params(monitor={"tolerances": {"log_loss": 0.1, "rmse": 5.0}}))
    assert parsed.monitor.tolerances == {"log_loss": 0.1, "rmse": 5.0}  # rmse: the other task's, skipped
    with pytest.raises(Exception, match=r"monitor\.tolerances\.logloss: must be one of .*Did you mean 'log_loss'"):
        parse_params(base_params(monitor={"tolerances": {"logloss": 0.1}}))


@pytest.fixture(scope="module")
def trained():
    forest = {"random_forest": {"n_estimators": 30, "min_samples_leaf": 5, "n_jobs": 1}}
    params = parse_params(base_params(model="random_forest", hyperparameters=forest))
    return run(generate(rows=3000, seed=0), params)


def _monitor(result, batch, test_metrics):
    return monitor(
        model=result.model,
        reference=reference_of(result),
        batch=batch,
        config=MonitorParams(bootstrap=100),
        metric="roc_auc",
        seed=0,
        test_metrics=test_metrics,
    )


def test_log_loss_and_brier_that_worsened_ask_for_retraining_though_roc_auc_held(trained):
    batch = generate(rows=1500, seed=11)
    measured = _monitor(trained, batch, None).report["performance"]["batch"]
    test = {**measured, "log_loss": measured["log_loss"] - 0.36, "brier": measured["brier"] - 0.15}
    verdict = _monitor(trained, batch, test)
    judged = verdict.report["performance"]["judged"]
    assert judged["roc_auc"]["dropped"] is False and judged["log_loss"]["dropped"] and judged["brier"]["dropped"]
    assert verdict.retrain and [r.split(" ")[2] for r in verdict.reasons] == ["log_loss", "brier"]
    assert verdict.blockers == [] and verdict.report["labels"]["drifted"] is False


def test_an_undefined_headline_metric_is_a_blocker_not_within_tolerance(trained):
    batch = generate(rows=400, seed=11).assign(churned=False)  # one class: ROC-AUC is undefined
    verdict = _monitor(trained, batch, trained.metrics["test"])
    head = verdict.report["performance"]["headline"]
    assert head["undefined"] is True and head["dropped"] is False and math.isnan(head["batch"])
    assert verdict.report["blockers"] == verdict.blockers and len(verdict.blockers) == 2
    assert verdict.blockers[0].startswith("label drift: every labeled row (400) is class 'False'")
    assert verdict.blockers[1].startswith("roc_auc is undefined on the 400 labeled batch rows")


def test_a_batch_without_labels_reports_no_label_rows_and_no_blocker(trained):
    verdict = _monitor(trained, generate(rows=300, seed=11).drop(columns=["churned"]), trained.metrics["test"])
    assert verdict.report["labels"] == {
        "rows": 0,
        "reference_rows": len(trained.splits["train"]),
        "drifted": False,
        "reason": None,
    }
    assert verdict.blockers == []
    empty = _monitor(trained, generate(rows=300, seed=11).assign(churned=None), trained.metrics["test"])
    assert empty.report["labels"]["rows"] == 0 and empty.blockers == []


# --- strict JSON ---------------------------------------------------------------------------------------


def test_write_json_writes_strict_json(tmp_path):
    data = {
        "nan": float("nan"),
        "inf": [float("inf"), -float("inf")],
        "numpy": {"f32": np.float32("nan"), "f64": np.float64(0.5), "i": np.int64(3), "b": np.bool_(True)},
        "array": np.array([1.0, np.nan]),
        "frame_value": pd.Series([np.nan]).iloc[0],
    }
    write_json(data, tmp_path / "out.json")
    text = (tmp_path / "out.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))
    assert parsed == {
        "nan": None,
        "inf": [None, None],
        "numpy": {"f32": None, "f64": 0.5, "i": 3, "b": True},
        "array": [1.0, None],
        "frame_value": None,
    }


def test_whole_number_labels_read_as_floats_are_the_same_classes():
    """A CSV column of 0/1 labels with a gap reads as 0.0/1.0: the same classes, not unseen ones."""
    from reprotab.model.schema import Schema, encode_target
    from reprotab.monitoring.verdict import check_batch

    schema = Schema(task="classification", target="y", numeric=("x",), categorical=(), classes=(0, 1))
    batch = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, None]})
    check_batch(batch, schema)
    assert encode_target(batch["y"].dropna(), schema).tolist() == [0, 1]
    with pytest.raises(UserError, match=r"holds classes the model never saw .* Got \['2'\]"):
        check_batch(batch.assign(y=[0.0, 2.0, None]), schema)
