import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from reprotab.evaluate import importance
from reprotab.model.featurizer import (
    OneHotMatrix,
    build_featurizer,
    encoded_groups,
    featurize,
    one_hot_groups,
    safe_name,
)
from reprotab.model.schema import Schema, encode_target
from reprotab.params.sections import FeaturizeParams
from reprotab.train.families import MODELS
from reprotab.train.fit import fit
from tests.unit.train.test_estimators import SMALL

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


@pytest.mark.parametrize(
    "limits", [{"min_frequency": 0.05, "max_categories": 4}, {"min_frequency": None, "max_categories": None}]
)
def test_one_hot_fitted_on_codes_is_scikit_learns_encoder(limits):
    """OneHotMatrix.fit learns from sorted integer codes: categories, their order, the infrequent
    groups, names and the encoding of new rows (unseen values too) must equal OneHotEncoder's."""
    rng = np.random.default_rng(2)
    levels = ["b", "B", "a", "ä", "a b", "__missing__", "z,1", "10", "9", "rare"]
    weights = np.array([30, 20, 15, 10, 8, 6, 5, 3, 2, 1], dtype=float)
    train = pd.DataFrame(
        {"city": rng.choice(levels, 500, p=weights / weights.sum()), "plan": rng.choice(["x", "y"], 500)}, dtype=object
    )
    new = pd.DataFrame({"city": ["rare", "never seen", "ä", "b"], "plan": ["y", "x", "unseen", "x"]}, dtype=object)
    settings = dict(handle_unknown="infrequent_if_exist", sparse_output=False, dtype=np.float32, **limits)
    ours, theirs = OneHotMatrix(**settings).fit(train), OneHotEncoder(**settings).fit(train)
    for mine, reference in zip(ours.categories_, theirs.categories_, strict=True):
        assert mine.dtype == reference.dtype and mine.tolist() == reference.tolist()
    infrequent = [getattr(encoder, "_infrequent_indices", None) for encoder in (ours, theirs)]
    if limits["max_categories"]:
        assert [list(c) if c is not None else None for c in ours.infrequent_categories_] == [
            list(c) if c is not None else None for c in theirs.infrequent_categories_
        ]
        assert any(c is not None for c in ours.infrequent_categories_)
    else:
        assert infrequent == [None, None]
    assert list(ours.get_feature_names_out()) == list(theirs.get_feature_names_out())
    np.testing.assert_array_equal(ours.transform(new), theirs.transform(new))
    np.testing.assert_array_equal(ours.transform(train), theirs.transform(train))


def test_one_hot_fit_never_counts_text_one_object_at_a_time(monkeypatch):
    """The point of OneHotMatrix.fit: scikit-learn's per-object path (`_unique_python`, 18 s at
    800,000 rows) is not taken for text columns, grouped or not; a plain OneHotEncoder takes it."""
    import sklearn.utils._encode as encode

    def refuse(*args, **kwargs):
        raise AssertionError("counted text values one object at a time")

    monkeypatch.setattr(encode, "_unique_python", refuse)
    train = pd.DataFrame({"city": ["a", "b", "b", "c"] * 50, "plan": ["x", "y"] * 100}, dtype=object)
    for limits in ({"min_frequency": 0.3, "max_categories": 3}, {}):
        OneHotMatrix(handle_unknown="infrequent_if_exist", sparse_output=False, **limits).fit(train)
    with pytest.raises(AssertionError, match="one object at a time"):
        OneHotEncoder(min_frequency=0.3).fit(train)
    drop = OneHotMatrix(drop=["a", "x"], sparse_output=False)  # named values to drop: the plain fit
    with pytest.raises(AssertionError, match="one object at a time"):
        drop.fit(train)


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
        hyperparameters=SMALL[model_name],
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


def high_cardinality_frame(task: str = "binary", rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """A 60-level column carrying signal (above max_categories 30), a 3-level one, a number, and
    unique row ids carrying none; names and values with JSON-special characters."""
    rng = np.random.default_rng(seed)
    levels = [f"m:{i:02d}" for i in range(60)]
    effect = dict(zip(levels, rng.normal(scale=1.5, size=len(levels)), strict=True))
    merchant = rng.choice(levels, rows)
    signal = pd.Series(merchant).map(effect).to_numpy() + rng.normal(scale=0.5, size=rows)
    frame = pd.DataFrame(
        {
            "merchant [id]": merchant,
            "channel": rng.choice(["web", "app", "store"], rows),
            "x": rng.normal(size=rows),
            "row id": [f"r{i}" for i in range(rows)],
        }
    )
    if task == "binary":
        frame["y"] = np.where(signal > 0, "yes", "no")  # labels, not 0/1: the encoder gets class indices
    elif task == "multiclass":
        frame["y"] = np.array(["low", "mid", "high"])[np.digitize(signal, [-0.7, 0.7])]
    else:
        frame["y"] = np.round(signal).astype(float)  # whole numbers, still a regression target
    kind = "regression" if task == "regression" else "classification"
    return frame, Schema.infer(frame, task=kind, target="y", id_column=None)


def test_high_cardinality_columns_are_target_encoded_and_the_others_stay_one_hot():
    frame, schema = high_cardinality_frame()
    validation = frame.head(4).assign(**{"merchant [id]": "never-seen", "row id": "new"})
    featurizer, train, held = featurize(train=frame, validation=validation, schema=schema, config=FeaturizeParams())
    merchant = safe_name("merchant [id]")
    assert [c for c in train.columns if c.startswith(merchant.split("_")[0])] == [merchant]
    assert {"channel_app", "channel_store", "channel_web"} <= set(train.columns)
    assert one_hot_groups(featurizer) == {"channel": ["channel_app", "channel_store", "channel_web"]}
    assert encoded_groups(featurizer) == {
        "channel": ["channel_app", "channel_store", "channel_web"],
        "merchant [id]": [merchant],
        "row id": [safe_name("row id")],
    }
    assert held[merchant].nunique() == 1 and np.isfinite(held[merchant]).all()  # unseen: the training mean
    _, one_hot, _ = featurize(
        train=frame, validation=validation, schema=schema, config=FeaturizeParams(high_cardinality="one_hot")
    )
    assert merchant not in one_hot.columns
    assert 2 < sum(c.startswith("merchant") for c in one_hot.columns) <= 30


def test_training_rows_are_cross_fitted_so_ids_do_not_look_predictive():
    frame, schema = high_cardinality_frame()
    _, train, _ = featurize(train=frame, validation=frame.head(2), schema=schema, config=FeaturizeParams())
    y = encode_target(frame["y"], schema)
    ids, merchant = safe_name("row id"), safe_name("merchant [id]")
    leaky = build_featurizer(schema=schema, config=FeaturizeParams()).fit(frame[list(schema.features)], y)
    assert roc_auc_score(y, leaky.transform(frame[list(schema.features)])[ids]) == 1.0  # fit + transform leaks
    assert abs(roc_auc_score(y, train[ids]) - 0.5) < 0.1  # fit_transform does not
    assert roc_auc_score(y, train[merchant]) > 0.85  # the real signal survives cross-fitting
    again = featurize(train=frame, validation=frame.head(2), schema=schema, config=FeaturizeParams())[1]
    other_seed = featurize(train=frame, validation=frame.head(2), schema=schema, config=FeaturizeParams(), seed=1)[1]
    assert again.equals(train) and not other_seed.equals(train)  # seeded folds


def test_tune_folds_and_refit_cross_fit_their_training_rows():
    from reprotab.params.sections import SamplingParams
    from reprotab.train.fit import refit
    from reprotab.tune.search import build_folds

    frame, schema = high_cardinality_frame(rows=500)
    train, validation = frame.iloc[:400], frame.iloc[400:]
    ids = safe_name("row id")
    folds = build_folds(
        train=train,
        validation=validation,
        schema=schema,
        cv_folds=2,
        featurize=FeaturizeParams(),
        sampler="none",
        sampling=SamplingParams(),
        seed=0,
    )
    assert all(abs(roc_auc_score(fold.y, fold.X[ids]) - 0.5) < 0.15 for fold in folds)
    featurizer, features, _ = featurize(train=train, validation=validation, schema=schema, config=FeaturizeParams())
    model, summary = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="lightgbm",
        hyperparameters={"n_estimators": 10, "n_jobs": 1},
        seed=0,
    )
    _, _, rows = refit(
        model,
        summary,
        train=train,
        validation=validation,
        featurize=FeaturizeParams(),
        model="lightgbm",
        hyperparameters={"n_estimators": 10, "n_jobs": 1},
        seed=0,
    )
    assert abs(roc_auc_score(encode_target(rows["y"], schema), rows[ids]) - 0.5) < 0.1


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_target_encoded_models_predict_unseen_categories_pickle_and_report_raw_columns(task, tmp_path):
    from reprotab.model.served import load, save

    frame, schema = high_cardinality_frame(task)
    featurizer, train, held = featurize(
        train=frame.iloc[:320], validation=frame.iloc[320:], schema=schema, config=FeaturizeParams()
    )
    width = 3 if task == "multiclass" else 1  # one column per class, else one
    assert [len(encoded_groups(featurizer)[c]) for c in ("merchant [id]", "row id")] == [width, width]
    names = [c for c in train.columns if c != "y"]
    assert all(re.fullmatch(r"[\w.\-]+", name) for name in names)
    model, _ = fit(
        features=train,
        schema=schema,
        featurizer=featurizer,
        model="lightgbm",
        hyperparameters={"n_estimators": 20, "min_child_samples": 5, "n_jobs": 1},
        seed=0,
        validation=held,
    )
    save(model, tmp_path / "model.zip")
    model = load(tmp_path / "model.zip")
    unseen = frame.iloc[320:].assign(**{"merchant [id]": "m:new", "channel": "fax", "row id": "new"})
    assert len(model.predict(unseen)) == len(unseen)
    raw = {"merchant [id]", "channel", "x", "row id"}
    own = importance.model_importance(model)
    assert own is not None and set(own.index) <= raw and own["merchant [id]"] > own["row id"]
    y = encode_target(frame.iloc[320:]["y"], schema)
    metric = "rmse" if task == "regression" else "roc_auc"
    table = importance.permutation_importance(
        model, frame.iloc[320:], y, metric=metric, seed=0, n_repeats=2, max_rows=200
    )
    assert set(table["feature"]) == raw and table.iloc[0]["feature"] == "merchant [id]"
