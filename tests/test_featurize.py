import numpy as np
import pandas as pd

from reprotab.params import FeaturizeParams
from reprotab.preprocessing import featurize
from reprotab.schema import Schema

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
