"""CatBoost and the linear model as stored boosters: real fitted models of each kind round-trip to the
same bytes and the same predictions, predict what the fitted estimator does, and a tampered file
is refused with a BoosterError before CatBoost (or anything) reads it."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reprotab.model.boosters import (
    BOOSTERS,
    THREADED_FROM,
    Booster,
    BoosterError,
    CatBoostBooster,
    LinearBooster,
)
from reprotab.train.families import build_estimator

WIDTH = 6
CLASSES = {"binary": 2, "multiclass": 3, "regression": 0}
SMALL = {"catboost": {"n_estimators": 20, "depth": 4, "thread_count": 1}, "linear": {"alpha": 1.0}}
FAMILIES = {"catboost": CatBoostBooster, "linear": LinearBooster}
CASES = [(family, kind) for family in FAMILIES for kind in CLASSES]


def rows(n: int, seed: int = 0) -> pd.DataFrame:
    """Featurized rows as the pipeline passes them: a float32 frame with the featurizer's names."""
    values = np.random.default_rng(seed).normal(size=(n, WIDTH)).astype(np.float32)
    return pd.DataFrame(values * np.float32(3), columns=[f"f{i}" for i in range(WIDTH)])


def target(kind: str, X: pd.DataFrame) -> np.ndarray:
    signal = X["f0"].to_numpy() + 0.5 * X["f1"].to_numpy()
    if kind == "regression":
        return 2.0 * signal + 1.0
    return np.digitize(signal, [-1.0, 1.0] if kind == "multiclass" else [0.0])


def fit(family: str, kind: str, seed: int = 0) -> Any:
    X = rows(300, seed)
    task = "regression" if kind == "regression" else "classification"
    return build_estimator(model=family, task=task, hyperparameters=SMALL[family], seed=seed).fit(X, target(kind, X))


@pytest.fixture(scope="module")
def fitted() -> dict[tuple[str, str], tuple[Any, Booster]]:
    found = {}
    for family, kind in CASES:
        estimator = fit(family, kind)
        booster = FAMILIES[family].from_estimator(estimator, kind=kind, n_classes=CLASSES[kind], n_features=WIDTH)
        found[family, kind] = (estimator, booster)
    return found


def load(family: str, kind: str, data: bytes) -> Booster:
    return BOOSTERS[family].from_bytes(data, kind=kind, n_classes=CLASSES[kind], n_features=WIDTH)


def expected(estimator: Any, kind: str, X: Any) -> np.ndarray:
    return np.asarray(estimator.predict(X) if kind == "regression" else estimator.predict_proba(X), dtype=float)


@pytest.mark.parametrize("family,kind", CASES, ids=["-".join(c) for c in CASES])
def test_a_booster_round_trips_to_the_same_bytes_and_predictions(fitted, family, kind):
    estimator, booster = fitted[family, kind]
    data = booster.to_bytes()
    loaded = load(family, kind, data)
    assert loaded.to_bytes() == data and load(family, kind, loaded.to_bytes()).to_bytes() == data
    X = rows(THREADED_FROM + 100, seed=5).to_numpy()  # past THREADED_FROM: every core
    assert np.array_equal(loaded.predict(X), booster.predict(X))
    # one thread: the same numbers for CatBoost; NumPy's matrix product may round a row's score one
    # ulp differently in another batch size (the fitted estimator's own arithmetic, kept)
    assert np.abs(loaded.predict(X[:7]) - loaded.predict(X)[:7]).max() <= (0.0 if family == "catboost" else 1e-12)
    shape = (len(X),) if kind == "regression" else (len(X), CLASSES[kind])
    assert loaded.predict(X).shape == shape and loaded.predict(X).dtype == np.float64
    # what the fitted estimator predicts: bit for bit for the linear model; CatBoost's JSON reader
    # may read a leaf value one ulp off what it wrote
    tolerance = 0.0 if family == "linear" else 1e-12
    assert np.abs(loaded.predict(X) - expected(estimator, kind, X)).max() <= tolerance
    np.testing.assert_allclose(loaded.importances(), estimator.feature_importances_, rtol=1e-9, atol=1e-12)
    assert loaded.size() == (1 if family == "linear" else estimator.tree_count_)
    assert type(loaded.native) is type(estimator)


def test_the_linear_arrays_are_stored_exactly(fitted):
    estimator, booster = fitted["linear", "multiclass"]
    stored = json.loads(booster.to_bytes())
    assert stored["kind"] == "multiclass" and np.array(stored["coef"]).shape == (3, WIDTH)
    loaded = load("linear", "multiclass", booster.to_bytes())
    for name in ("mean_", "scale_", "coef_", "intercept_"):
        assert np.array_equal(getattr(loaded.native, name), getattr(estimator, name)), name
    tricky = [5e-324, 1 / 3, 0.1 + 0.2, 1e300, math.pi, float(np.nextafter(1.0, 2.0))]  # subnormal, 17 digits
    stored["mean"], stored["scale"] = [-0.0, *tricky[1:]], tricky
    again = load("linear", "multiclass", json.dumps(stored).encode())
    for name, values in (("mean_", stored["mean"]), ("scale_", tricky)):
        assert np.array_equal(getattr(again.native, name).view(np.uint64), np.array(values).view(np.uint64))
    assert load("linear", "multiclass", again.to_bytes()).to_bytes() == again.to_bytes()


def test_equal_catboost_fits_give_equal_bytes():
    """CatBoost's JSON holds a random model_guid and the time training ended: both are dropped."""
    first, second = (
        CatBoostBooster.from_estimator(fit("catboost", "binary"), kind="binary", n_classes=2, n_features=WIDTH)
        for _ in range(2)
    )
    assert first.to_bytes() == second.to_bytes()
    assert b"model_guid" not in first.to_bytes() and b"train_finish_time" not in first.to_bytes()


def test_a_loaded_catboost_model_trains_on(fitted):
    """Continued training passes the stored model's native estimator as CatBoost's init_model."""
    _, booster = fitted["catboost", "binary"]
    old = load("catboost", "binary", booster.to_bytes()).native
    X = rows(200, seed=9)
    new = build_estimator(model="catboost", task="classification", hyperparameters=SMALL["catboost"], seed=0)
    new.fit(X, target("binary", X), init_model=old)
    assert new.tree_count_ == old.tree_count_ + SMALL["catboost"]["n_estimators"]


def test_catboost_models_this_project_cannot_store_are_refused_when_trained():
    X = rows(200)
    depthwise = build_estimator(
        model="catboost",
        task="classification",
        hyperparameters={**SMALL["catboost"], "grow_policy": "Depthwise"},
        seed=0,
    ).fit(X, target("binary", X))
    with pytest.raises(BoosterError, match="symmetric trees"):
        CatBoostBooster.from_estimator(depthwise, kind="binary", n_classes=2, n_features=WIDTH)
    poisson = build_estimator(
        model="catboost", task="regression", hyperparameters={**SMALL["catboost"], "loss_function": "Poisson"}, seed=0
    ).fit(X, np.abs(target("regression", X)))
    with pytest.raises(BoosterError, match="loss function 'Poisson' is not one a regression model uses"):
        CatBoostBooster.from_estimator(poisson, kind="regression", n_classes=0, n_features=WIDTH)


Edit = Callable[[dict[str, Any]], Any]


def _split(tree: int = 0, split: int = 0) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda m: m["oblivious_trees"][tree]["splits"][split]


def _bins(m: dict[str, Any]) -> int:
    return sum(len(f["borders"]) for f in m["features_info"]["float_features"])


CATBOOST_TAMPERING: list[tuple[str, str, Edit, str]] = [  # name, kind, edit, message
    ("split index past the borders", "binary", lambda m: _split()(m).update(split_index=_bins(m)), "out of range"),
    ("negative split index", "multiclass", lambda m: _split()(m).update(split_index=-1), "out of range"),
    (
        "split feature past the width",
        "regression",
        lambda m: _split()(m).update(float_feature_index=WIDTH),
        "not those",
    ),
    ("split border moved", "binary", lambda m: _split()(m).update(border=_split()(m)["border"] + 1e-3), "not those"),
    ("categorical split", "binary", lambda m: _split()(m).update(split_type="OneHotFeature"), "float feature's"),
    (
        "leaf value dropped",
        "binary",
        lambda m: m["oblivious_trees"][1]["leaf_values"].pop(),
        "must be a list of numbers, 16 long",
    ),
    (
        "leaf count of a binary tree",
        "multiclass",
        lambda m: m["oblivious_trees"][0].update(leaf_values=m["oblivious_trees"][0]["leaf_values"][:16]),
        "must be a list of numbers, 48 long",
    ),
    (
        "split added, leaves not",
        "regression",
        lambda m: m["oblivious_trees"][0]["splits"].append(copy.deepcopy(_split()(m))),
        "must be a list of numbers, 32 long",
    ),
    ("deeper than 16", "binary", lambda m: m["oblivious_trees"][0].update(splits=[_split()(m)] * 17), "at most 16"),
    (
        "leaf weight negative",
        "binary",
        lambda m: m["oblivious_trees"][0]["leaf_weights"].__setitem__(0, -1.0),
        "must not be negative",
    ),
    (
        "leaf value a string",
        "binary",
        lambda m: m["oblivious_trees"][0]["leaf_values"].__setitem__(0, "0.5"),
        "must be a list of numbers, 16 long",
    ),
    (
        "leaf value a boolean",
        "regression",
        lambda m: m["oblivious_trees"][0]["leaf_values"].__setitem__(0, True),
        "must be a list of numbers, 16 long",
    ),
    (
        "leaves summing past float64",
        "regression",
        lambda m: [t.update(leaf_values=[1e299] * 16) for t in m["oblivious_trees"]],
        "too large for a finite prediction",
    ),
    (
        "border not increasing",
        "binary",
        lambda m: next(f for f in m["features_info"]["float_features"] if len(f["borders"]) > 1)["borders"].reverse(),
        "increasing float32",
    ),
    (
        "border past float32",
        "binary",
        lambda m: m["features_info"]["float_features"][0]["borders"].__setitem__(-1, 1e39),
        "increasing float32",
    ),
    ("a float feature missing", "binary", lambda m: m["features_info"]["float_features"].pop(), "6 float features"),
    (
        "features out of order",
        "binary",
        lambda m: m["features_info"]["float_features"].reverse(),
        "feature_index and flat_feature_index must be 0",
    ),
    (
        "categorical features",
        "binary",
        lambda m: m["features_info"].update(categorical_features=[]),
        "float features only",
    ),
    ("CTR data", "binary", lambda m: m.update(ctr_data={}), "must hold exactly"),
    ("non-symmetric trees", "binary", lambda m: m.update(trees=m.pop("oblivious_trees")), "symmetric trees"),
    ("no trees", "binary", lambda m: m.update(oblivious_trees=[]), "1 to 1048576 trees"),
    (
        "regression loss on a classifier",
        "binary",
        lambda m: m["model_info"]["params"]["loss_function"].update(type="RMSE"),
        "'RMSE' is not one a binary model uses",
    ),
    (
        "binary loss on a multiclass model",
        "multiclass",
        lambda m: m["model_info"]["params"]["loss_function"].update(type="Logloss"),
        "'Logloss' is not one a multiclass model uses",
    ),
    (
        "classifier loss on a regressor",
        "regression",
        lambda m: m["model_info"]["params"]["loss_function"].update(type="Logloss"),
        "'Logloss' is not one a regression model uses",
    ),
    (
        "unknown loss",
        "regression",
        lambda m: m["model_info"]["params"]["loss_function"].update(type="Bogus"),
        "not one a regression model uses",
    ),
    ("no params", "binary", lambda m: m["model_info"].pop("params"), "must hold params"),
    (
        "class labels not 0..n-1",
        "multiclass",
        lambda m: m["model_info"]["class_params"].update(class_names=[0, 1, 3]),
        "integer classes 0 to 2",
    ),
    (
        "class labels as booleans",
        "binary",
        lambda m: m["model_info"]["class_params"].update(class_names=[False, True]),
        "integer classes 0 to 1",
    ),
    (
        "class params on a regressor",
        "regression",
        lambda m: m["model_info"].update(class_params={}),
        "classifiers only",
    ),
    ("unknown model_info key", "binary", lambda m: m["model_info"].update(extra="x"), "nothing but"),
    (
        "bias of another dimension",
        "multiclass",
        lambda m: m.update(scale_and_bias=[1, [0.0]]),
        "bias must be a list of numbers, 3 long",
    ),
    ("scale a string", "binary", lambda m: m.update(scale_and_bias=["1", [0.0]]), "scale must be a number"),
    (
        "lone surrogate in a name",
        "binary",
        lambda m: m["features_info"]["float_features"][0].update(feature_id="\ud800"),
        "lone surrogate",
    ),
    (
        "control character in a name",
        "binary",
        lambda m: m["features_info"]["float_features"][0].update(feature_id="a\x00b"),
        "control character",
    ),
]


@pytest.mark.parametrize("name,kind,edit,message", CATBOOST_TAMPERING, ids=[c[0] for c in CATBOOST_TAMPERING])
def test_tampered_catboost_models_are_refused(fitted, name, kind, edit, message):
    model = json.loads(fitted["catboost", kind][1].to_bytes())
    edit(model)
    with pytest.raises(BoosterError, match=message):
        load("catboost", kind, json.dumps(model).encode())


@pytest.mark.parametrize(
    "text,message",
    [
        (b"\xff{}", "is not JSON"),
        (b'{"features_info": 1, "features_info": 2}', "names a key twice"),
        (b"[" * 100_000, "is not JSON"),
        (b'{"x": NaN}', "is not JSON"),
        (b'{"x": 1e400}', "is not JSON"),
        (b"[]", "must hold exactly"),
    ],
)
def test_catboost_text_that_is_not_plain_json_is_refused(text, message):
    with pytest.raises(BoosterError, match=message):
        load("catboost", "binary", text)


def test_a_duplicate_key_inside_a_tree_is_refused(fitted):
    """Python keeps the last of two keys; another parser may keep the first: never let them differ."""
    data = fitted["catboost", "binary"][1].to_bytes()
    doubled = data.replace(b'"leaf_values":[', b'"leaf_values":[0.5],"leaf_values":[', 1)
    with pytest.raises(BoosterError, match="names a key twice"):
        load("catboost", "binary", doubled)


LINEAR_TAMPERING: list[tuple[str, str, Edit, str]] = [
    ("coef rows of a multiclass model", "binary", lambda m: m.update(coef=m["coef"] * 3), "coef must be 1 × 6 floats"),
    (
        "one coef row for three classes",
        "multiclass",
        lambda m: m.update(coef=m["coef"][:1]),
        "coef must be 3 × 6 floats",
    ),
    ("coef row one short", "regression", lambda m: m["coef"][0].pop(), "coef row 0 must be a list of floats, 6 long"),
    ("coef flat", "binary", lambda m: m.update(coef=m["coef"][0]), "coef must be 1 × 6 floats"),
    (
        "intercept per class short",
        "multiclass",
        lambda m: m["intercept"].pop(),
        "intercept must be a list of floats, 3 long",
    ),
    ("mean of another width", "binary", lambda m: m["mean"].append(0.0), "mean must be a list of floats, 6 long"),
    ("scale zero", "binary", lambda m: m["scale"].__setitem__(2, 0.0), "scale must be positive"),
    ("scale negative", "regression", lambda m: m["scale"].__setitem__(0, -1.0), "scale must be positive"),
    ("coef too large", "multiclass", lambda m: m["coef"][1].__setitem__(0, 1e300), "too large for a finite score"),
    ("intercept too large", "binary", lambda m: m["intercept"].__setitem__(0, 1.5e300), "too large"),
    ("an integer", "binary", lambda m: m["mean"].__setitem__(0, 1), "mean must be a list of floats, 6 long"),
    (
        "a string",
        "regression",
        lambda m: m["intercept"].__setitem__(0, "0.5"),
        "intercept must be a list of floats, 1 long",
    ),
    ("a regression model as binary", "binary", lambda m: m.update(kind="regression"), "not a binary model"),
    ("no kind", "regression", lambda m: m.pop("kind"), "exactly kind, coef, intercept, mean and scale"),
    ("an extra array", "binary", lambda m: m.update(classes=[0.0, 1.0]), "exactly kind"),
]


@pytest.mark.parametrize("name,kind,edit,message", LINEAR_TAMPERING, ids=[c[0] for c in LINEAR_TAMPERING])
def test_tampered_linear_models_are_refused(fitted, name, kind, edit, message):
    model = json.loads(fitted["linear", kind][1].to_bytes())
    edit(model)
    with pytest.raises(BoosterError, match=message):
        load("linear", kind, json.dumps(model).encode())


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_non_finite_linear_number_is_refused(fitted, literal):
    data = fitted["linear", "binary"][1].to_bytes()
    start = data.index(b'"coef":[[') + len(b'"coef":[[')
    end = data.index(b",", start)
    with pytest.raises(BoosterError, match="is not JSON"):
        load("linear", "binary", data[:start] + literal + data[end:])


def test_extreme_linear_and_catboost_models_still_predict_finite_probabilities(fitted):
    """The largest values the checks let through: scores stay finite, probabilities stay probabilities."""
    X = np.vstack([rows(20).to_numpy(), np.full((2, WIDTH), 3e38, np.float32), np.full((1, WIDTH), -3e38)])
    model = json.loads(fitted["linear", "binary"][1].to_bytes())
    model["coef"] = [[1e298] * WIDTH]
    model["scale"] = [5e-324] * WIDTH
    proba = load("linear", "binary", json.dumps(model).encode()).predict(X.astype(np.float32))
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1) and (proba >= 0).all()
    model = json.loads(fitted["catboost", "multiclass"][1].to_bytes())
    for tree in model["oblivious_trees"]:
        tree["leaf_values"] = [1e298 * (-1) ** i for i in range(len(tree["leaf_values"]))]
    proba = load("catboost", "multiclass", json.dumps(model).encode()).predict(X.astype(np.float32))
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
