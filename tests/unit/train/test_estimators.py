import json

import numpy as np
import pandas as pd
import pytest

from reprotab.errors import UserError
from reprotab.model.featurizer import featurize
from reprotab.model.schema import Schema, encode_target
from reprotab.params.sections import FeaturizeParams
from reprotab.train.families import MODELS, build_estimator
from reprotab.train.fit import fit

SMALL = {
    "random_forest": {"n_estimators": 20, "n_jobs": 1},  # one thread: spreading tiny fits over cores is slower
    "xgboost": {"n_estimators": 20, "n_jobs": 1},
    "lightgbm": {"n_estimators": 20, "min_child_samples": 2, "n_jobs": 1},
    "catboost": {"n_estimators": 20, "depth": 4, "thread_count": 1},
    "linear": {"alpha": 1.0},
}


def tiny(task: str, classes: int = 2) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"x": x, "c": rng.choice(["a", "b"], 60)})
    if task == "regression":
        frame["y"] = 3 * x + rng.normal(scale=0.1, size=60)
    else:
        frame["y"] = np.array(["low", "mid", "high"][:classes])[
            np.digitize(x, np.quantile(x, [1 / 3, 2 / 3])[: classes - 1])
        ]
    schema = Schema.infer(frame, task=task, target="y", id_column=None)
    return frame, schema


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("task,classes", [("classification", 2), ("classification", 3), ("regression", 0)])
def test_every_model_and_task_trains_and_predicts_raw_rows(model, task, classes):
    frame, schema = tiny(task, classes)
    featurizer, features, _ = featurize(train=frame, validation=frame.head(5), schema=schema, config=FeaturizeParams())
    trained, _ = fit(
        features=features, schema=schema, featurizer=featurizer, model=model, hyperparameters=SMALL[model], seed=0
    )
    raw = frame.drop(columns=["y"]).head(10)
    predicted = trained.predict(raw)
    assert len(predicted) == 10
    if task == "classification":
        assert set(predicted) <= set(schema.classes)
        assert trained.predict_proba(raw).shape == (10, classes)
        assert (predicted == frame["y"].head(10)).mean() >= 0.7
    else:
        assert np.corrcoef(predicted, frame["y"].head(10))[0, 1] > 0.8


def test_unknown_hyperparameter_is_reported_with_suggestion():
    with pytest.raises(
        UserError,
        match=r"hyperparameters\.xgboost\.max_dept: is not a parameter of xgboost.*"
        r"Did you mean 'max_depth'\?",
    ):
        build_estimator(model="xgboost", task="classification", hyperparameters={"max_dept": 3}, seed=0)


def test_seed_is_applied():
    estimator = build_estimator(model="random_forest", task="regression", hyperparameters={}, seed=7)
    assert estimator.random_state == 7


def test_missing_feature_columns_are_named():
    frame, schema = tiny("classification")
    featurizer, features, _ = featurize(train=frame, validation=frame, schema=schema, config=FeaturizeParams())
    trained, _ = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
    )
    with pytest.raises(
        UserError, match=r"input rows: lacks 1 feature column\(s\) the model was trained on\. Got \['c'\]"
    ):
        trained.predict(frame[["x"]])


def test_threshold_decides_binary_labels():
    frame, schema = tiny("classification")
    featurizer, features, _ = featurize(train=frame, validation=frame, schema=schema, config=FeaturizeParams())
    trained, _ = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
    )
    trained.threshold = 0.0
    assert set(trained.predict(frame)) == {schema.positive_class}


def test_encode_target_rejects_unseen_classes():
    schema = Schema(task="classification", target="y", numeric=("x",), categorical=(), classes=("a", "b"))
    assert encode_target(pd.Series(["b", "a"]), schema).tolist() == [1, 0]
    with pytest.raises(UserError, match=r"target 'y': has classes unseen in training"):
        encode_target(pd.Series(["c"]), schema)


def test_the_recorded_library_defaults_are_the_ones_the_library_applies():
    """XGBoost's wrapper reports its defaults as None; the registry's values must be the real ones."""
    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    spec = MODELS["xgboost"]

    def applied(**settings):
        fitted = spec.estimator_class("classification")(n_estimators=2, **settings).fit(X, y)
        return json.loads(fitted.get_booster().save_config())["learner"]["gradient_booster"]["tree_train_param"]

    assert spec.unset_defaults and applied() == applied(**spec.unset_defaults)


def test_the_recorded_catboost_defaults_are_the_ones_it_applies():
    """CatBoost's wrapper lists only the settings passed to it; the registry's values must be the real ones."""
    X, y = np.random.default_rng(0).normal(size=(60, 3)), np.arange(60) % 2
    spec = MODELS["catboost"]
    cls = spec.estimator_class("classification")
    names = {"depth": "depth", "l2_leaf_reg": "l2_leaf_reg", "colsample_bylevel": "rsm"}  # the wrapper's → CatBoost's
    fitted = cls(n_estimators=2, thread_count=1, **spec.fixed).fit(X, y).get_all_params()
    assert {name: fitted[names[name]] for name in names} == {name: spec.unset_defaults[name] for name in names}
    assert cls(**spec.fixed).get_params().get("n_estimators") is None  # 1,000 rounds, documented: not fitted here
