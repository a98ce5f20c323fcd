"""Drift monitoring: PSI and bins on hand-made arrays, and the monitor on generated demo batches
(no drift, strong drift, labeled, text-stored numbers, the prediction log) with every bad input.
The bootstrap engine is tested once, in tests/unit/stats/test_resample.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reprotab.data.demo import generate
from reprotab.data.tables import write_json
from reprotab.errors import UserError
from reprotab.model import served
from reprotab.monitoring.report import main
from reprotab.monitoring.verdict import clean, monitor
from reprotab.params.loader import parse_params
from reprotab.params.sections import MonitorParams
from reprotab.pipeline import run
from reprotab.stats.drift import EPSILON, categorical_bins, ks_test, numeric_bins, psi
from reprotab.stats.sketch import MAX_CATEGORIES, POINTS, category_sketch, from_dict, numeric_sketch
from tests.helpers import base_params, reference_of

CONFIG = MonitorParams(bootstrap=200)


# --- PSI and bins on hand-made arrays ---------------------------------------------------------


def test_psi_of_equal_shares_is_zero():
    assert psi(np.array([50, 30, 20]), np.array([5, 3, 2])) == 0.0


def test_psi_of_shifted_shares():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi(np.array([1, 1]), np.array([1, 3])) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))


def test_psi_floors_an_empty_bin_at_epsilon():
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    assert psi(np.array([10, 0]), np.array([5, 5])) == pytest.approx(expected)


def test_numeric_bins_are_reference_quantiles_plus_missing():
    reference = numeric_sketch(np.arange(1.0, 11.0))  # with bins=5 the inner edges are 2, 4, 6, 8
    counted = numeric_bins(reference, np.array([1.0, 1.0, 9.0, np.nan]), bins=5)
    assert counted.reference.tolist() == pytest.approx([1, 2, 2, 2, 3, 0], abs=10 / POINTS)  # an edge goes above
    assert counted.batch.tolist() == [2, 0, 0, 0, 1, 1]
    assert counted.labels[0] == "[-inf, 2)" and counted.labels[-1] == "(missing)"


def test_few_distinct_values_get_one_bin_each():
    counted = numeric_bins(numeric_sketch(np.array([1.0, 2.0, 3.0] * 10)), np.array([3.0, 3.0]), bins=10)
    assert counted.reference.tolist() == pytest.approx(
        [0, 10, 10, 10, 0], abs=30 / POINTS
    ) and counted.batch.tolist() == [0, 0, 0, 2, 0]


def test_the_sketch_bins_a_large_column_as_its_rows_would():
    values = np.random.default_rng(1).lognormal(size=200_000)
    counted = numeric_bins(numeric_sketch(values), values[:1000], bins=10)
    exact = np.bincount(np.searchsorted(numeric_sketch(values).edges(10), values, side="right"), minlength=10)
    assert np.abs(counted.reference[:-1] - exact).max() <= 200_000 / 1000  # within the sketch's 1/POINTS


def test_categorical_bins_have_missing_and_unseen():
    counted = categorical_bins(category_sketch(pd.Series(["a", "a", "b", None])), pd.Series(["a", "c", None, None]))
    assert counted.labels == ["a", "b", "(missing)", "(unseen)"]
    assert counted.reference.tolist() == [2, 1, 1, 0]
    assert counted.batch.tolist() == [1, 0, 2, 1]


def test_categories_beyond_the_sketchs_limit_are_pooled_as_other():
    many = pd.Series([f"c{i}" for i in range(MAX_CATEGORIES + 5)] + ["c0"] * 10)
    summary = category_sketch(many)
    assert len(summary.counts) == MAX_CATEGORIES and summary.other == 5 and next(iter(summary.counts)) == "c0"
    counted = categorical_bins(summary, pd.Series(["c0", "never seen", None]))
    assert counted.labels[-3:] == ["(other)", "(missing)", "(unseen)"]
    assert counted.batch[-3:].tolist() == [1, 1, 0]  # an unknown value may be one of the pooled ones


def test_ks_against_the_sketch_agrees_with_scipy_on_the_rows():
    rng = np.random.default_rng(0)
    a = rng.normal(size=100_000)
    for shift, rows in ((0.0, 5000), (0.05, 5000), (0.5, 2000)):
        b = rng.normal(shift, size=rows)
        exact = stats.ks_2samp(a[:50_000], b)
        statistic, p_value = ks_test(numeric_sketch(a), b, max_rows=50_000, seed=3)
        assert statistic == pytest.approx(exact.statistic, abs=2 / POINTS)
        assert math.log10(max(p_value, 1e-300)) == pytest.approx(math.log10(max(exact.pvalue, 1e-300)), abs=1.0)
    assert ks_test(numeric_sketch(a), b, max_rows=1000, seed=3) == ks_test(numeric_sketch(a), b, max_rows=1000, seed=3)
    assert ks_test(numeric_sketch(a), np.full(3, np.nan), max_rows=1000, seed=3) == (1.0, 0.0)


def test_a_malformed_sketch_is_refused_by_name():
    good = numeric_sketch(np.arange(10.0)).as_dict()
    assert from_dict(good, what="x").as_dict() == good
    for broken, said in (
        ({**good, "rows": -1}, "x rows must be a count"),
        ({**good, "missing": 11}, "more missing values"),
        ({**good, "quantiles": good["quantiles"][::-1]}, "must not decrease"),
        ({**good, "quantiles": [1.0, 2.0]}, "quantiles must be a list of 1001"),
        ({**good, "mean": float("nan")}, "x mean must be a finite number"),
        ({"kind": "categorical", "rows": 3, "missing": 0, "counts": {"a": 1}}, "do not add up"),
        ({"kind": "other"}, "kind 'numeric' or 'categorical'"),
    ):
        with pytest.raises(ValueError, match=said):
            from_dict(broken, what="x")


# --- the monitor on demo batches -------------------------------------------------------------------


def _model_params(**overrides):
    raw = base_params(hyperparameters={"random_forest": {"n_estimators": 40, "min_samples_leaf": 5, "n_jobs": 1}})
    return parse_params({**raw, **overrides})


@pytest.fixture(scope="module")
def trained():
    params = _model_params()
    result = run(generate(rows=6000, seed=0), params)
    return result, params


def _monitor(trained, batch, **kwargs):
    result, params = trained
    return monitor(
        model=result.model,
        reference=reference_of(result),
        batch=batch,
        config=kwargs.pop("config", CONFIG),
        metric=params.metric,
        seed=params.seed,
        test_metrics=result.metrics["test"],
        **kwargs,
    )


def test_batch_without_drift_asks_for_no_retraining(trained):
    verdict = _monitor(trained, generate(rows=4000, seed=11).drop(columns=["churned"]))
    assert verdict.report["drifted"] == [] and not verdict.retrain and verdict.reasons == []
    assert verdict.report["prediction"]["drifted"] is False and verdict.report["performance"] is None
    assert max(f["psi"] for f in verdict.report["features"].values()) < 0.05


def test_moderate_drift_moves_the_usage_columns(trained):
    verdict = _monitor(trained, generate(rows=4000, seed=11, drift=0.3))
    assert set(verdict.report["drifted"]) == {"support_tickets", "days_since_last_login"}
    assert {verdict.report["features"][c]["severity"] for c in verdict.report["drifted"]} == {"moderate"}


def test_strong_drift_flags_the_drifted_columns_and_asks_for_retraining(trained):
    verdict = _monitor(trained, generate(rows=4000, seed=11, drift=1.0))
    drifted = set(verdict.report["drifted"])
    assert {"contract", "monthly_charges", "support_tickets", "days_since_last_login"} <= drifted
    assert drifted <= {"contract", "monthly_charges", "support_tickets", "days_since_last_login", "avg_session_minutes"}
    assert verdict.retrain and verdict.report["retrain"] is True
    assert any("prediction drift" in reason for reason in verdict.reasons)
    assert verdict.report["features"]["contract"]["severity"] == "strong"


def test_labeled_batch_reports_performance_with_an_interval(trained):
    verdict = _monitor(trained, generate(rows=4000, seed=11))
    performance = verdict.report["performance"]
    low, high = performance["headline"]["interval_95"]
    assert performance["rows"] == 4000 and performance["metric"] == "roc_auc"
    assert low < performance["headline"]["batch"] < high and high - low < 0.1
    assert performance["headline"]["test"] == trained[0].metrics["test"]["roc_auc"]
    assert performance["dropped"] is False and not verdict.retrain


def test_performance_drop_beyond_tolerance_asks_for_retraining(trained):
    batch = generate(rows=4000, seed=11)
    batch["churned"] = np.random.default_rng(0).random(len(batch)) < 0.07  # labels unrelated to the features
    verdict = _monitor(trained, batch)
    assert verdict.report["performance"]["dropped"] is True
    assert any(reason.startswith("performance dropped: roc_auc") for reason in verdict.reasons)


def test_numbers_stored_as_text_do_not_drift(trained):
    batch = generate(rows=4000, seed=11)
    as_text = batch.assign(
        monthly_charges=batch["monthly_charges"].map("{:.2f}".format),
        tenure_months=batch["tenure_months"].astype(str),
        age=batch["age"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}"),
    )
    plain, text = _monitor(trained, batch).report, _monitor(trained, as_text).report
    assert text["drifted"] == [] and not text["retrain"]
    for column in ("monthly_charges", "tenure_months", "age", "total_charges"):
        assert text["features"][column]["psi"] == plain["features"][column]["psi"]
    assert text["prediction"]["psi"] == plain["prediction"]["psi"]


def test_infinite_values_count_as_missing(trained):
    batch = generate(rows=500, seed=11)
    batch.loc[:9, "monthly_charges"] = np.inf
    cleaned = clean(batch, trained[0].model, min_share=0.95).frame
    assert cleaned["monthly_charges"].isna().sum() == 10


def test_regression_model_scores_its_predictions():
    data = {**base_params()["data"], "target": "next_month_spend", "drop_columns": ["churned"]}
    params = _model_params(task="regression", metric="rmse", data=data)
    result = run(generate(rows=3000, seed=0), params)
    verdict = monitor(
        model=result.model,
        reference=reference_of(result),
        batch=generate(rows=2000, seed=5, drift=1.0),
        config=CONFIG,
        metric="rmse",
        seed=0,
        test_metrics=result.metrics["test"],
    )
    assert verdict.report["prediction"]["score"] == "prediction" and verdict.report["prediction"]["test"] == "ks"
    assert verdict.report["performance"]["metric"] == "rmse" and verdict.retrain
    text_target = generate(rows=50, seed=5).astype({"next_month_spend": object})
    text_target.loc[0, "next_month_spend"] = "unknown"
    with pytest.raises(UserError, match=r"batch target 'next_month_spend': must be numeric for a regression model"):
        monitor(
            model=result.model,
            reference=reference_of(result),
            batch=text_target,
            config=CONFIG,
            metric="rmse",
            seed=0,
        )


# --- bad input ------------------------------------------------------------------------------------


def test_missing_feature_column_is_named_with_a_suggestion(trained):
    batch = generate(rows=200, seed=11).rename(columns={"contract": "contracts"})
    with pytest.raises(
        UserError, match=r"batch: lacks 1 feature column.*Got \['contract'\]\. Rename 'contracts' to 'contract'"
    ):
        _monitor(trained, batch)


def test_numeric_feature_of_text_is_an_error(trained):
    batch = generate(rows=200, seed=11)
    batch["monthly_charges"] = np.where(np.arange(200) % 2, "n/a", "12.5")
    with pytest.raises(UserError, match=r"hold text.*'monthly_charges': \"50% numbers, e\.g\. 'n/a'\""):
        _monitor(trained, batch)


def test_empty_batch_is_an_error(trained):
    with pytest.raises(UserError, match="batch: has no rows"):
        _monitor(trained, generate(rows=10, seed=11).iloc[:0])


def test_target_class_the_model_never_saw_is_an_error(trained):
    batch = generate(rows=200, seed=11).astype({"churned": object})
    batch.loc[3, "churned"] = "maybe"
    with pytest.raises(UserError, match=r"batch target 'churned': holds classes the model never saw.*\['maybe'\]"):
        _monitor(trained, batch)


def test_psi_bands_out_of_order_are_a_params_error():
    with pytest.raises(UserError, match=r"monitor\.psi_strong: must be at least monitor\.psi_moderate"):
        parse_params(base_params(monitor={"psi_moderate": 0.3, "psi_strong": 0.2}))


# --- the command ----------------------------------------------------------------------------------


@pytest.fixture
def workspace(trained, tmp_path, monkeypatch):
    result, _ = trained
    monkeypatch.chdir(tmp_path)
    served.save(result.model, tmp_path / "models/model.zip")
    (tmp_path / "data/prepared").mkdir(parents=True)
    result.splits["train"].to_parquet(tmp_path / "data/prepared/train.parquet")
    result.splits["test"].to_parquet(tmp_path / "data/prepared/test.parquet")
    write_json({"test": result.metrics["test"]}, tmp_path / "reports/evaluate/metrics.json")
    (tmp_path / "params.yaml").write_text(json.dumps(base_params(monitor={"bootstrap": 100})))
    return tmp_path


def test_command_writes_the_report_and_exits_0_on_drift(workspace, capsys):
    generate(rows=3000, seed=11, drift=1.0).to_parquet(workspace / "november.parquet")
    main(["--batch", "november.parquet"])
    out = workspace / "reports/monitor/november"
    report = json.loads((out / "drift.json").read_text())
    assert report["retrain"] is True and "retrain: true" in capsys.readouterr().out
    assert "# Drift report: november" in (out / "drift.md").read_text()
    pictures = {p.stem for p in (out / "figures").glob("*.png")}
    assert pictures == {*report["drifted"], "prediction"}


def test_command_exits_2_on_bad_input(workspace):
    generate(rows=300, seed=11).drop(columns=["age"]).to_parquet(workspace / "bad.parquet")
    with pytest.raises(SystemExit) as stopped:
        main(["--batch", "bad.parquet"])
    assert stopped.value.code == 2 and not (workspace / "reports/monitor/bad").exists()


def test_command_prints_stop_lines_for_blockers_and_writes_strict_json(workspace, capsys):
    generate(rows=600, seed=11).assign(churned=True).to_parquet(workspace / "broken-join.parquet")
    main(["--batch", "broken-join.parquet"])  # every label True: label drift, and ROC-AUC is undefined
    out = workspace / "reports/monitor/broken-join"
    printed = capsys.readouterr().out.splitlines()
    stops = [line for line in printed if line.startswith("stop: ")]
    assert len(stops) == 2 and stops[0].startswith("stop: label drift: every labeled row (600) is class 'True'")
    assert printed.index(stops[-1]) < printed.index(next(line for line in printed if line.startswith("retrain: ")))
    text = (out / "drift.json").read_text()
    report = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in drift.json"))
    assert report["performance"]["batch"]["roc_auc"] is None and report["labels"]["drifted"] is True
    assert [f"stop: {b}" for b in report["blockers"]] == stops
    page = (out / "drift.md").read_text()
    assert page.index("**stop: do not retrain on this batch without a human**") < page.index("**retrain:")
    assert "| roc_auc | nan |" in page and "**undefined**" in page
