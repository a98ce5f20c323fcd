import re

import numpy as np
import pandas as pd
import pytest

from reprotab import importance
from reprotab.models import MODELS
from reprotab.params import FeaturizeParams
from reprotab.preprocessing import featurize, safe_name
from reprotab.schema import Schema, encode_target
from reprotab.training import fit

SCHEMA = Schema(
    task="classification", target="y", numeric=("n", "flag"), categorical=("c",), classes=(0, 1), positive_class=1
)


def frames():
    train = pd.DataFrame(
        {
            "n": [1.0, 2.0, np.nan, 10.0] * 5,
            "flag": [True, False, None, True] * 5,
            "c": ["a", "a", "b", None] * 4 + ["a", "a", "a", "rare"],
            "y": [0, 1] * 10,
        }
    )
    validation = pd.DataFrame({"n": [np.nan, 5.0], "flag": [None, False], "c": ["never-seen", "b"], "y": [0, 1]})
    return train, validation


def test_imputer_is_fitted_on_train_only():
    train, validation = frames()
    _featurizer, _, features = featurize(train=train, validation=validation, schema=SCHEMA, config=FeaturizeParams())
    assert features.loc[0, "n"] == 2.0  # the train median, though validation's own median is 5.0
    assert features.loc[0, "missingindicator_n"] == 1.0


def test_unseen_and_rare_categories_do_not_crash_and_are_grouped():
    train, validation = frames()
    config = FeaturizeParams(rare_category_min_share=0.1)
    _featurizer, train_features, features = featurize(train=train, validation=validation, schema=SCHEMA, config=config)
    columns = list(train_features.columns)
    assert "c_infrequent_sklearn" in columns and "c_rare" not in columns
    assert features.loc[0, "c_infrequent_sklearn"] == 1.0  # 'never-seen' joins the infrequent group
    assert features.loc[1, "c_b"] == 1.0


def test_feature_names_are_kept_and_target_carried():
    train, validation = frames()
    _, train_features, _ = featurize(train=train, validation=validation, schema=SCHEMA, config=FeaturizeParams())
    assert {"n", "flag", "c_a", "c_b", "y"} <= set(train_features.columns)
    assert train_features["y"].tolist() == train["y"].tolist()


def test_scaling_is_optional():
    train, validation = frames()
    _, scaled, _ = featurize(train=train, validation=validation, schema=SCHEMA, config=FeaturizeParams(scale=True))
    assert abs(scaled["n"].mean()) < 1e-9


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("model_name", list(MODELS))
def test_every_model_accepts_category_values_and_column_names_with_json_special_characters(task, model_name):
    rng = np.random.default_rng(0)
    n = 240
    values = ["KOREA, REPUBLIC OF", 'say "hi"', "[bracketed]", "a:b", "{x}", "Köln", "São Paulo", "a<b"]
    frame = pd.DataFrame(
        {
            "country": rng.choice(values, n),
            "price [$]": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "Größe": rng.normal(size=n),
        }
    )
    signal = frame["country"].isin(values[:4]).to_numpy() + frame["price [$]"].fillna(0).to_numpy()
    frame["target"] = signal > 0.5 if task == "classification" else signal
    schema = Schema.infer(frame, task=task, target="target", id_column=None)
    featurizer, train, _ = featurize(
        train=frame, validation=frame.iloc[:20], schema=schema, config=FeaturizeParams(rare_category_min_share=0.0)
    )
    names = [c for c in train.columns if c != "target"]
    assert len(set(names)) == len(names) == 2 + 1 + len(values)  # 2 numbers, 1 missing flag, one-hot
    assert all(re.fullmatch(r"[\w.\-]+", name) for name in names)
    model, _ = fit(
        features=train,
        schema=schema,
        featurizer=featurizer,
        model=model_name,
        hyperparameters={"n_estimators": 5},
        seed=0,
    )
    predicted = model.predict(frame)
    assert len(predicted) == n
    own = importance.model_importance(model)
    assert own is not None and set(own.index) <= {"country", "price [$]", "Größe"}
    y = encode_target(frame["target"], schema)
    metric = "roc_auc" if task == "classification" else "rmse"
    table = importance.permutation_importance(model, frame, y, metric=metric, seed=0, n_repeats=2, max_rows=200)
    assert set(table["feature"]) == {"country", "price [$]", "Größe"}


def test_safe_names_keep_safe_names_and_keep_distinct_names_distinct():
    assert safe_name("tenure_months") == "tenure_months"
    assert safe_name("plan_Köln") == "plan_Köln"
    assert safe_name("a,b") != safe_name("a:b")
    assert safe_name("a,b").startswith("a_b_")
