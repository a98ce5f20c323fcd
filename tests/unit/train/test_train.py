"""train in-process on small real data: early stopping, continued training, threshold, calibration,
reproducibility. That the threshold never looks at the test split, checked in a reproduced
project, is tests/integration/test_train.py."""

import warnings

import joblib
import numpy as np
import pytest

from reprotab.data.demo import generate
from reprotab.data.prepare import prepare
from reprotab.errors import UserError
from reprotab.model import served
from reprotab.model.decision import FROM_COUNTS, best_threshold, confusion_at
from reprotab.model.featurizer import featurize
from reprotab.params.loader import parse_params
from reprotab.params.sections import THRESHOLD_METRICS, FeaturizeParams, TrainParams
from reprotab.stats.metrics import CLASSIFICATION, Scored
from reprotab.train.fit import fit, load_previous
from reprotab.tune.best import BestParams
from tests.helpers import base_params

SMALL = {
    "random_forest": {"n_estimators": 20, "n_jobs": 1},
    "xgboost": {"n_estimators": 20, "n_jobs": 1},
    "lightgbm": {"n_estimators": 20, "n_jobs": 1},
}


def split_data(rows: int, *, task: str = "classification", seed: int = 0):
    frame = generate(rows=rows, seed=seed)
    data = base_params()["data"]
    if task == "regression":
        data = {**data, "target": "next_month_spend", "drop_columns": ["churned"]}
    p = parse_params(base_params(task=task, data=data, metric="rmse" if task == "regression" else "roc_auc"))
    splits, schema, _ = prepare(
        frame, task=task, seed=0, data=p.data, test_size=0.2, validation_size=0.2, text_min_share=0.95
    )
    featurizer, train, validation = featurize(
        train=splits["train"], validation=splits["validation"], schema=schema, config=FeaturizeParams()
    )
    return splits, schema, featurizer, train, validation


@pytest.fixture(scope="module")
def churn():
    return split_data(3000)


def train(churn, model="random_forest", settings=None, hyperparameters=None, **kwargs):
    _, schema, featurizer, features, validation = churn
    return fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model=model,
        hyperparameters=hyperparameters or SMALL[model],
        seed=0,
        validation=validation,
        settings=settings or TrainParams(early_stopping_rounds=None),  # every round: tests count them
        **kwargs,
    )


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_early_stopping_stops_before_the_round_limit(churn, model):
    many = {"n_estimators": 2000, "learning_rate": 0.3, "n_jobs": 1}
    _, summary = train(churn, model, TrainParams(early_stopping_rounds=10), many)
    assert summary["best_iteration"] < 2000
    assert summary["size"] < 2000


def test_early_stopping_needs_validation_rows(churn):
    _, schema, featurizer, features, validation = churn
    with pytest.raises(UserError, match=r"train\.early_stopping_rounds: needs rows in the validation split"):
        fit(
            features=features,
            schema=schema,
            featurizer=featurizer,
            model="xgboost",
            hyperparameters=SMALL["xgboost"],
            seed=0,
            validation=validation.head(0),
            settings=TrainParams(early_stopping_rounds=5),
        )


@pytest.mark.parametrize("model", ["random_forest", "xgboost", "lightgbm"])
def test_continued_training_grows_the_model_and_leaves_the_source_untouched(churn, model, tmp_path):
    _, schema, featurizer, features, _ = churn
    first, summary = train(churn, model)
    source = tmp_path / "previous.zip"
    served.save(first, source)
    before = source.read_bytes()
    names = [str(n) for n in featurizer.get_feature_names_out()]
    previous = load_previous(source, model=model, schema=schema, feature_names=names)
    continued, more = train(churn, model, previous=previous)
    assert more["continued_from_size"] == summary["size"] == 20
    assert more["size"] == 40
    assert source.read_bytes() == before
    assert continued.predict_proba(features.head(0).pipe(lambda _: churn[0]["test"])).shape[1] == 2


def test_continuing_from_an_incompatible_model_names_what_differs(churn, tmp_path):
    _, schema, featurizer, _, _ = churn
    names = [str(n) for n in featurizer.get_feature_names_out()]
    forest, _ = train(churn, "random_forest")
    served.save(forest, tmp_path / "forest.zip")
    with pytest.raises(UserError, match=r"train\.init_model: was trained on something else: model random_forest"):
        load_previous(tmp_path / "forest.zip", model="xgboost", schema=schema, feature_names=names)
    with pytest.raises(UserError, match=r"features \(missing now: \['tenure_months'\]"):
        load_previous(
            tmp_path / "forest.zip",
            model="random_forest",
            schema=schema,
            feature_names=[n for n in names if "tenure" not in n],
        )
    regression = split_data(600, task="regression")
    other, _ = fit(
        features=regression[3],
        schema=regression[1],
        featurizer=regression[2],
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
    )
    served.save(other, tmp_path / "regression.zip")
    with pytest.raises(UserError, match=r"task regression \(now classification\)"):
        load_previous(tmp_path / "regression.zip", model="random_forest", schema=schema, feature_names=names)
    (tmp_path / "corrupt.zip").write_bytes(b"not a model bundle")
    with pytest.raises(UserError, match=r"train\.init_model: is not a valid model bundle"):
        load_previous(tmp_path / "corrupt.zip", model="random_forest", schema=schema, feature_names=names)
    joblib.dump(forest, tmp_path / "pickled.joblib")  # what train wrote up to format 2
    with pytest.raises(UserError, match=r"train\.init_model: is a pickle from an older version.*model convert"):
        load_previous(tmp_path / "pickled.joblib", model="random_forest", schema=schema, feature_names=names)
    with pytest.raises(UserError, match=r"train\.init_model: file not found.*dvc get"):
        load_previous(tmp_path / "absent.zip", model="random_forest", schema=schema, feature_names=names)


def test_auto_threshold_maximizes_the_metric_on_validation(churn):
    schema = churn[1]
    trained, summary = train(churn)
    assert summary["validation_f1_at_threshold"] >= summary["validation_f1_at_0.5"]
    # recompute on validation: no other candidate threshold does better
    rows = churn[0]["validation"]
    proba = trained.predict_proba(rows)[:, trained.positive_index()]
    truth = (rows[schema.target] == schema.positive_class).to_numpy().astype(int)
    two = np.column_stack([1 - proba, proba])

    def f1(t):
        return CLASSIFICATION["f1"](Scored(truth, (proba >= t).astype(int), two, 1))

    assert f1(trained.threshold) == pytest.approx(summary["validation_f1_at_threshold"], abs=1e-6)
    assert all(f1(t) <= f1(trained.threshold) + 1e-9 for t in np.unique(proba))


@pytest.mark.parametrize("classes", ["both", "negatives only", "positives only"])
@pytest.mark.parametrize("metric", THRESHOLD_METRICS)
def test_threshold_scores_from_one_sort_equal_scikit_learns_at_every_candidate(metric, classes):
    """decision.confusion_at counts every threshold from one sort; each score must be what the
    metric registry (scikit-learn) gives for that threshold's predictions, ties and all, also when
    the held-out rows hold one class only, and NaN probabilities are never predicted positive."""
    rng = np.random.default_rng(5)
    proba = rng.choice(np.linspace(0, 1, 41), size=700)  # many ties
    proba[:3] = np.nan
    truth = {"both": (rng.random(700) < proba * 0.6), "negatives only": np.zeros(700), "positives only": np.ones(700)}
    truth = truth[classes].astype(int)
    candidates = np.concatenate([np.unique(proba[~np.isnan(proba)]), [1.5]])  # 1.5: nothing predicted positive
    two = np.column_stack([1 - proba, proba])
    ours = FROM_COUNTS[metric](*confusion_at(candidates, proba, truth))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the missing class
        theirs = [CLASSIFICATION[metric](Scored(truth, (proba >= t).astype(int), two, 1)) for t in candidates]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    clean = ~np.isnan(proba)
    threshold, score = best_threshold(positive_proba=proba[clean], is_positive=truth[clean], metric=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean_scores = [
            CLASSIFICATION[metric](Scored(truth[clean], (proba[clean] >= t).astype(int), two[clean], 1))
            for t in candidates[:-1]
        ]
    assert score == pytest.approx(max(clean_scores), abs=1e-12)
    assert threshold == candidates[int(np.argmax(clean_scores))]  # the lowest of equally good thresholds


def test_every_threshold_metric_has_a_formula():
    assert set(FROM_COUNTS) == set(THRESHOLD_METRICS)


def test_threshold_with_a_recall_floor(churn):
    trained, _ = train(churn, settings=TrainParams(threshold_metric="precision", min_recall=0.8))
    rows = churn[0]["validation"]
    predicted = trained.predict(rows)
    positive = trained.schema.positive_class
    recall = ((predicted == positive) & (rows["churned"] == positive)).sum() / (rows["churned"] == positive).sum()
    assert recall >= 0.8


def test_calibration_improves_the_brier_score_of_a_miscalibrated_model():
    splits, schema, featurizer, features, validation = split_data(6000, seed=4)
    scores = {}
    for method in ("none", "isotonic", "sigmoid"):
        trained, _ = fit(
            features=features,
            schema=schema,
            featurizer=featurizer,
            model="random_forest",
            hyperparameters={"n_estimators": 60, "min_samples_leaf": 5, "n_jobs": 1},
            seed=0,
            sampler="random_under",  # balanced training rows: churn probabilities far too high
            validation=validation,
            settings=TrainParams(calibration=method),
        )
        test = splits["test"]
        proba = trained.predict_proba(test)
        truth = (test["churned"] == schema.positive_class).to_numpy().astype(int)
        scores[method] = float(np.mean((proba[:, trained.positive_index()] - truth) ** 2))
    assert scores["isotonic"] < 0.8 * scores["none"]
    assert scores["sigmoid"] < 0.8 * scores["none"]


def test_calibrated_multiclass_probabilities_sum_to_one():
    from reprotab.model.decision import Calibrator

    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=200)
    y = rng.integers(0, 3, size=200)
    out = Calibrator("isotonic").fit(proba, y).transform(proba)
    assert out.shape == (200, 3) and np.allclose(out.sum(axis=1), 1)


def test_a_class_missing_from_the_training_split_is_named():
    _, schema, featurizer, features, _ = split_data(600)
    only_false = features[features["churned"] == False]  # noqa: E712
    with pytest.raises(UserError, match=r"target 'churned': has classes absent from the training split.*True"):
        fit(
            features=only_false,
            schema=schema,
            featurizer=featurizer,
            model="random_forest",
            hyperparameters=SMALL["random_forest"],
            seed=0,
        )


@pytest.mark.parametrize("model", ["random_forest", "xgboost", "lightgbm"])
def test_same_seed_and_data_give_the_same_model(churn, model):
    first, a = train(churn, model)
    second, b = train(churn, model)
    rows = churn[0]["test"]
    assert a == b
    assert np.array_equal(first.predict_proba(rows), second.predict_proba(rows))


@pytest.mark.parametrize(
    ("train_params", "message"),
    [
        ({"threshold": 1.5}, r"train\.threshold: must be auto, null or a number in \[0, 1\]\. Got 1\.5"),
        ({"threshold": "best"}, r"train\.threshold: must be one of auto, null"),
        ({"min_recall": 0.5, "min_precision": 0.5}, r"set at most one of the two"),
    ],
)
def test_bad_train_params(train_params, message):
    with pytest.raises(UserError, match=message):
        parse_params(base_params(train=train_params))


def test_calibration_for_regression_is_refused():
    data = {**base_params()["data"], "target": "next_month_spend"}
    with pytest.raises(UserError, match=r"train\.calibration: calibrates class probabilities.*Got 'isotonic'"):
        parse_params(base_params(task="regression", metric="rmse", data=data, train={"calibration": "isotonic"}))


def test_refit_keeps_the_validation_decisions_and_scales_the_early_stopped_rounds(churn):
    from reprotab.train.fit import metadata, refit

    splits, schema = churn[0], churn[1]
    settings = TrainParams(early_stopping_rounds=5, threshold="auto", calibration="sigmoid")
    model, summary = train(churn, model="lightgbm", settings=settings, hyperparameters={"n_estimators": 200})
    kept = summary["best_iteration"]
    refitted, refit_summary, rows = refit(
        model,
        summary,
        train=splits["train"],
        validation=splits["validation"],
        featurize=FeaturizeParams(),
        model="lightgbm",
        hyperparameters={**SMALL["lightgbm"], "n_estimators": 200},
        seed=0,
    )
    n_train, n_validation = len(splits["train"]), len(splits["validation"])
    assert refit_summary["refit"]["n_estimators"] == round(kept * (n_train + n_validation) / n_train)
    assert refit_summary["size"] == refit_summary["refit"]["n_estimators"]
    assert refitted.threshold == model.threshold and refitted.calibrator is model.calibrator
    assert len(rows) == n_train + n_validation
    assert refitted.plan.to_dict() != model.plan.to_dict()  # the featurizer refitted on train + validation
    proba = refitted.predict_proba(splits["test"])
    assert proba.shape == (len(splits["test"]), 2) and np.isfinite(proba).all()
    card = metadata(
        model="lightgbm",
        schema=schema,
        hyperparameters={},
        features=rows,
        tuning=BestParams.from_dict({"tuner": "none"}),
        trained_on={"train": n_train, "validation": n_validation},
    )
    assert card["trained_on"] == ["train", "validation"] and card["training_rows"] == n_train + n_validation


def test_refit_steps_aside_for_continued_training_and_pseudo_labeling():
    def skipped(**train):
        return parse_params(base_params(train={**base_params()["train"], **train})).train.refit_skipped

    assert skipped() is None and skipped(refit=False, init_model="models/previous.zip") is None
    assert skipped(init_model="models/previous.zip") == "train.init_model continues a previous model"
    assert skipped(pseudo_labeling={"enabled": True}) == "train.pseudo_labeling decides on validation rows"


@pytest.mark.parametrize("model", ["lightgbm", "ensemble"])
def test_refit_all_ships_every_row_and_keeps_the_train_validation_model_to_judge(model):
    from reprotab.pipeline import run

    members = [
        {"model": "lightgbm", "hyperparameters": {"n_estimators": 80, "n_jobs": 1}, "weight": 0.5},
        {"model": "linear", "hyperparameters": {"alpha": 1.0}, "weight": 0.5},
    ]
    raw = base_params(model="lightgbm", hyperparameters={"lightgbm": {"n_estimators": 80, "n_jobs": 1}})
    raw["train"] = {**raw["train"], "refit": "all"}
    result = run(generate(rows=2000, seed=4), parse_params(raw))
    if model == "ensemble":  # a blend as tune hands it over
        from reprotab.train.run import frame_splits, run_train
        from reprotab.tune.best import BestParams

        params = parse_params({**raw, "model": "ensemble", "tuner": "random"})
        best = BestParams.from_dict({"tuner": "random", "model": "ensemble", "params": {"members": members}})
        trained = run_train(schema=result.schema, best=best, params=params, read_split=frame_splits(result.splits))
        card, summary, shipped, judged = trained.card, trained.summary, trained.model, trained.judged
        kept = [m["best_iteration"] for m in summary["ensemble"]["members"]]
        refitted = card.hyperparameters["members"]
        assert kept[0] is not None and kept[1] is None  # the linear member has no rounds
    else:
        card, summary, shipped, judged = result.card, result.training, result.model, result.judged
    rows = card.trained_on_rows
    assert card.trained_on == ["train", "validation", "test"] and card.judged_on == ["train", "validation"]
    assert card.training_rows == sum(rows.values()) == 2000
    assert summary["judged"]["rows"] == {"train": rows["train"], "validation": rows["validation"]}
    if model == "lightgbm":
        assert summary["refit"]["n_estimators"] == round(summary["best_iteration"] * 2000 / rows["train"])
        assert summary["judged"]["n_estimators"] == round(
            summary["best_iteration"] * (rows["train"] + rows["validation"]) / rows["train"]
        )
    else:
        assert judged is not shipped and shipped.family == judged.family == "ensemble"
        assert len(refitted) == 2
    test = result.splits["test"]
    assert judged is not shipped and not np.allclose(judged.predict_proba(test), shipped.predict_proba(test))


def test_a_refit_value_other_than_true_false_or_all_is_named():
    with pytest.raises(UserError, match=r"train\.refit: must be one of true, false, all\. Got 'everything'"):
        parse_params(base_params(train={"refit": "everything"}))
