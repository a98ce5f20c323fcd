"""The evaluation report's pieces on tiny hand-written data, expected values written inline."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from reprotab.evaluate import importance, plot_data, report, summary
from reprotab.model.featurizer import build_featurizer
from reprotab.model.schema import Schema, encode_target
from reprotab.model.served import TabularModel
from reprotab.params.sections import FeaturizeParams
from reprotab.stats.metrics import Scored


@pytest.fixture(scope="module")
def tiny_model() -> tuple[TabularModel, pd.DataFrame]:
    """A real fitted binary model on 40 hand-made rows: `x` decides, `plan` is a category."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 40)
    frame = pd.DataFrame(
        {
            "x": np.where(np.arange(40) % 7 == 0, np.nan, x),
            "plan": rng.choice(["basic", "plus", "pro"], 40),
            "churned": x + rng.normal(0, 0.1, 40) > 0.5,
        }
    )
    schema = Schema.infer(frame, task="classification", target="churned", id_column=None)
    featurizer = build_featurizer(schema=schema, config=FeaturizeParams(rare_category_min_share=0.0))
    estimator = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1)
    return fitted_model(featurizer, estimator, schema, frame), frame


def fitted_model(featurizer, estimator, schema: Schema, rows: pd.DataFrame) -> TabularModel:
    """Fit the featurizer, then the random forest on its output (what a scikit-learn pipeline's
    fit does), and build the served model from both."""
    y = encode_target(rows[schema.target], schema)
    estimator.fit(featurizer.fit_transform(rows[list(schema.features)], y), y)
    return TabularModel.from_fitted(featurizer=featurizer, estimator=estimator, family="random_forest", schema=schema)


def test_confusion_table_counts_and_shares_of_each_true_class():
    y_true, y_pred = np.array([0, 0, 0, 1, 1]), np.array([0, 0, 1, 1, 0])
    counts = plot_data.confusion_table(y_true, y_pred, ["no", "yes"], normalized=False)
    shares = plot_data.confusion_table(y_true, y_pred, ["no", "yes"], normalized=True)
    assert counts.to_numpy().tolist() == [[2, 1], [1, 1]]
    assert shares.to_numpy() == pytest.approx(np.array([[2 / 3, 1 / 3], [0.5, 0.5]]))
    assert list(shares.index) == ["no", "yes"] and shares.index.name == "actual"


def test_confusion_records_are_one_row_per_prediction_as_text():
    records = plot_data.confusion_records([True, False], [True, True])
    assert records.to_dict("records") == [
        {"actual": "True", "predicted": "True"},
        {"actual": "False", "predicted": "True"},
    ]


def test_calibration_bins_hold_equal_row_counts_in_probability_order():
    score = np.array([0.9, 0.1, 0.4, 0.2, 0.8, 0.3])
    hit = np.array([1, 0, 0, 0, 1, 1])
    frame = plot_data.calibration_frame(hit, score, bins=3)
    assert frame.to_dict("list") == {
        "prob_pred": [0.15, 0.35, 0.85],
        "prob_true": [0.0, 0.5, 1.0],
        "count": [2, 2, 2],
    }


def test_calibration_target_is_the_positive_class_or_the_top_label():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    hit, score = plot_data.calibration_target(np.array([0, 1]), proba, None)
    assert hit.tolist() == [True, False] and score.tolist() == [0.7, 0.6]
    hit, score = plot_data.calibration_target(np.array([0, 1]), proba[:, :2], 1)
    assert hit.tolist() == [False, True] and score.tolist() == [0.2, 0.3]


def test_per_class_table_and_its_bar_records():
    table = plot_data.per_class_table(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 2, 0]), ["a", "b", "c"])
    assert table["precision"].tolist() == [0.5, 0.666667, 1.0]
    assert table["recall"].tolist() == [0.5, 1.0, 0.5]
    assert table["f1"].tolist() == [0.5, 0.8, 0.666667]
    assert table["support"].tolist() == [2, 2, 2]
    records = plot_data.per_class_records(table)
    assert len(records) == 9
    assert records.iloc[0].to_dict() == {"label": "a precision", "class": "a", "metric": "precision", "value": 0.5}


def test_roc_and_precision_recall_frames_have_no_infinite_threshold():
    hit, score = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    roc = plot_data.roc_frame(hit, score)
    assert roc.iloc[0][["fpr", "tpr"]].tolist() == [0.0, 0.0] and pd.isna(roc["threshold"].iloc[0])
    assert roc.iloc[-1][["fpr", "tpr", "threshold"]].tolist() == [1.0, 1.0, 0.1]
    pr = plot_data.precision_recall_frame(hit, score)
    assert pr.iloc[-1][["recall", "precision"]].tolist() == [0.0, 1.0] and pd.isna(pr["threshold"].iloc[-1])
    assert not np.isinf(pd.concat([roc["threshold"], pr["threshold"]]).astype(float)).any()


def test_thin_keeps_the_ends_and_at_most_the_asked_points():
    frame = pd.DataFrame({"v": range(1000)})
    thinned = plot_data.thin(frame, max_points=10)
    assert len(thinned) == 10 and thinned["v"].iloc[0] == 0 and thinned["v"].iloc[-1] == 999
    assert plot_data.thin(frame.head(5), max_points=10).equals(frame.head(5))


def test_macro_roc_of_a_perfect_and_a_random_class_is_their_mean():
    perfect = plot_data.roc_frame(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    diagonal = pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})
    macro = plot_data.macro_roc([perfect, diagonal], points=5)
    assert macro["fpr"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert macro["tpr"].tolist() == [0.5, 0.625, 0.75, 0.875, 1.0]


def test_one_vs_rest_curves():
    proba = np.array([[0.8, 0.2], [0.3, 0.7]])
    binary = plot_data.one_vs_rest(np.array([0, 1]), proba, labels=["no", "yes"], positive=1)
    assert list(binary) == ["yes"] and binary["yes"][1].tolist() == [0.2, 0.7]
    multi = plot_data.one_vs_rest(np.array([0, 2]), np.eye(3)[[0, 2]], labels=["a", "b", "c"], positive=None)
    assert list(multi) == ["a", "b", "c"] and multi["c"][0].tolist() == [False, True]


def test_operating_points_at_given_thresholds():
    hit = np.array([True, True, False, False])
    points = plot_data.operating_points(hit, np.array([0.9, 0.4, 0.6, 0.1]), {"0.5": 0.5, "low": 0.3})
    assert points.set_index("name")[["fpr", "tpr", "precision", "recall"]].to_dict("index") == {
        "0.5": {"fpr": 0.5, "tpr": 0.5, "precision": 0.5, "recall": 0.5},
        "low": {"fpr": 0.5, "tpr": 1.0, "precision": 2 / 3, "recall": 1.0},
    }


def test_one_hot_columns_and_missing_flags_fold_into_their_raw_column():
    names = ["age", "missingindicator_age", "plan_a", "plan_b", "plan_infrequent_sklearn", "missingindicator_x"]
    mapping = importance.source_columns(
        names,
        features=["age", "plan", "missingindicator_x"],
        groups={"plan": ["plan_a", "plan_b", "plan_infrequent_sklearn"]},
    )
    assert mapping == {
        "age": "age",
        "missingindicator_age": "age",
        "plan_a": "plan",
        "plan_b": "plan",
        "plan_infrequent_sklearn": "plan",
        "missingindicator_x": "missingindicator_x",  # a raw column that happens to carry the prefix
    }
    importances = pd.Series([2.0, 1.0, 3.0, 2.0, 2.0, 0.0], index=names)
    shares = importance.aggregate_importance(importances, mapping)
    assert shares.to_dict() == pytest.approx({"plan": 0.7, "age": 0.3, "missingindicator_x": 0.0})
    assert list(shares.index) == ["plan", "age", "missingindicator_x"]


def test_model_importance_of_a_fitted_model_is_per_raw_column(tiny_model):
    model, _ = tiny_model
    shares = importance.model_importance(model)
    assert set(shares.index) == {"x", "plan"}
    assert shares.sum() == pytest.approx(1.0)
    assert shares.index[0] == "x"


def test_permutation_importance_on_raw_columns_is_seeded(tiny_model):
    model, frame = tiny_model
    y = encode_target(frame["churned"], model.schema)
    run = dict(metric="roc_auc", seed=3, n_repeats=3, max_rows=30)
    first = importance.permutation_importance(model, frame, y, **run)
    assert list(first["feature"]) == ["x", "plan"] and first["importance"].iloc[0] > 0.1
    assert first.equals(importance.permutation_importance(model, frame, y, **run))


def test_loss_metrics_count_a_rise_as_importance(tiny_model):
    model, frame = tiny_model
    y = encode_target(frame["churned"], model.schema)
    frame = importance.permutation_importance(model, frame, y, metric="log_loss", seed=0, n_repeats=2, max_rows=40)
    assert frame.set_index("feature").loc["x", "importance"] > 0


def test_build_report_fills_every_declared_plot_and_empties_those_of_other_tasks(tiny_model):
    model, frame = tiny_model
    proba = model.predict_proba(frame)
    test = Scored(encode_target(frame["churned"], model.schema), model.predict_index(frame), proba, positive=1)
    permutation = pd.DataFrame({"feature": ["x", "plan"], "importance": [0.3, 0.0], "std": [0.01, 0.0]})
    built = report.build_report(
        model=model,
        test=test,
        raw_proba=None,
        own_importance=importance.model_importance(model),
        permutation=permutation,
        metric="roc_auc",
    )
    assert set(built.plots) == set(report.PLOTS)
    empty = {name for name, plot in built.plots.items() if plot.empty}
    assert empty == {"residuals", "predicted_vs_actual", "calibration_uncalibrated"}
    for name, (x, y) in report.PLOTS.items():
        assert name in empty or {x, y} <= set(built.plots[name].columns)
    assert set(built.figures) == {
        "confusion_matrix",
        "confusion_matrix_normalized",
        "roc",
        "precision_recall",
        "calibration",
        "per_class",
        "importance_model",
        "importance_permutation",
    }
    assert built.tables["importance"].to_dict("list")["feature"] == ["x", "plan"]


def test_summary_lists_metrics_decisions_features_and_links(tiny_model):
    model, _ = tiny_model
    model = TabularModel(
        schema=model.schema, plan=model.plan, booster=model.booster, threshold=0.3, estimator_name=model.estimator_name
    )
    metrics = {
        "test": {"roc_auc": 0.9, "f1": 0.5, "at_0.5": {"f1": 0.25}},
        "validation": {"roc_auc": 0.8, "f1": 0.6, "at_0.5": {"f1": 0.2}},
        "threshold": 0.3,
    }
    importance = pd.DataFrame(
        {"feature": ["x", "plan"], "permutation": [0.2, 0.01], "permutation_std": [0.02, 0.01], "model": [0.9, 0.1]}
    )
    text = summary.summary_markdown(
        model=model,
        metrics=metrics,
        metric="f1",
        rows={"test": 40, "validation": 30},
        importance=importance,
        figures=["roc", "confusion_matrix"],
        files=["metrics.json", "tables/importance.csv"],
    )
    assert "| **f1** | 0.5000 | 0.6000 |" in text
    assert text.index("**f1**") < text.index("| roc_auc |")
    assert "Decision threshold on P(churned = True): 0.3000, chosen by train" in text
    assert "Calibration: none" in text
    assert "Test metrics at threshold 0.5: f1 0.2500." in text
    assert "| 1 | x | 0.2000 | 0.0200 | 0.900 |" in text
    assert "- [roc](figures/roc.png)" in text and "- [confusion matrix](figures/confusion_matrix.png)" in text
    assert "- [tables/importance.csv](tables/importance.csv)" in text


def test_batched_permutation_importance_equals_sklearns_with_the_same_seed(tiny_model, monkeypatch):
    from sklearn.inspection import permutation_importance as sklearn_permutation_importance

    model, frame = tiny_model
    y = encode_target(frame["churned"], model.schema)
    X = frame[list(model.schema.features)]
    monkeypatch.setattr(importance, "BATCH_ROWS", 50)  # several batches, one column each
    ours = importance.permutation_importance(model, frame, y, metric="roc_auc", seed=5, n_repeats=4, max_rows=100)
    score = importance.scorer("roc_auc", "classification")

    class Scoring:  # sklearn's estimator protocol around the served model
        def fit(self, *args):
            return self

    scoring = lambda _, rows, truth: score(model, truth, model.predict_proba(rows))  # noqa: E731
    theirs = sklearn_permutation_importance(Scoring(), X, y, scoring=scoring, n_repeats=4, random_state=5)
    expected = dict(zip(X.columns, theirs.importances_mean, strict=True))
    assert ours.set_index("feature")["importance"].to_dict() == pytest.approx(expected, abs=1e-6)


def test_only_shuffled_copies_that_change_a_row_are_predicted_and_each_once():
    values = np.array([[0.0], [1.0], [1.0], [np.nan]])
    shuffled = np.array([1, 2, 0, 3, 2, 3, 1, 0])  # two repeats: copy i gives row i % 4 the values of row shuffled[i]
    changed, picked, which = importance._distinct_copies(values, shuffled)
    assert changed.tolist() == [0, 2, 4, 5, 7]  # copies 1, 3 and 6 give a row its own value (NaN too)
    assert sorted(picked.tolist()) == [0, 2, 5, 7]  # copy 4 gives row 0 the 1.0 that copy 0 gives it
    assert picked[which].tolist() == [0, 2, 0, 5, 7]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_permutation_importance_ranks_the_one_column_the_target_depends_on_first(task):
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame({f"noise_{i}": rng.normal(size=n) for i in range(4)})
    frame["signal"] = rng.normal(size=n)
    frame["colour"] = rng.choice(["red", "green", "blue"], n)
    frame["target"] = frame["signal"] > 0 if task == "classification" else 3 * frame["signal"] + rng.normal(0, 0.1, n)
    schema = Schema.infer(frame, task=task, target="target", id_column=None)
    featurizer = build_featurizer(schema=schema, config=FeaturizeParams())
    estimator = (RandomForestClassifier if task == "classification" else RandomForestRegressor)(
        n_estimators=20, random_state=0, n_jobs=1
    )
    train, held = frame.iloc[:400], frame.iloc[400:]
    model = fitted_model(featurizer, estimator, schema, train)
    metric = "roc_auc" if task == "classification" else "rmse"
    table = importance.permutation_importance(
        model, held, encode_target(held["target"], schema), metric=metric, seed=0, n_repeats=5, max_rows=2000
    ).set_index("feature")["importance"]
    assert table.index[0] == "signal" and table["signal"] > 0.3
    assert table.drop("signal").abs().max() < 0.05 * table["signal"]
