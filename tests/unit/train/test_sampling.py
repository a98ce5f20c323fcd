import zipfile

import numpy as np
import pandas as pd
import pytest

from reprotab.errors import UserError
from reprotab.model import served
from reprotab.model.featurizer import featurize, one_hot_groups
from reprotab.model.schema import Schema
from reprotab.params.sections import FeaturizeParams, SamplingParams, registry
from reprotab.train.fit import fit
from reprotab.train.sampling import SAMPLERS, balance, categorical_groups, resolve_sampler
from reprotab.tune.search import build_folds

CONFIG = SamplingParams()


def raw_imbalanced(classes: int = 2, categorical: bool = True, rows: int = 240, seed: int = 0):
    """A raw frame whose last class holds ~10% of rows; with a categorical column and a flag."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=rows, p=[0.9, 0.1] if classes == 2 else [0.6, 0.3, 0.1])
    frame = pd.DataFrame({"x": rng.normal(size=rows) + y, "z": rng.normal(size=rows), "flag": rng.random(rows) < 0.5})
    if categorical:
        frame["c"] = rng.choice(["a", "b", "c"], size=rows)
    frame["y"] = y
    return frame, Schema.infer(frame, task="classification", target="y", id_column=None)


def imbalanced(classes: int = 2, categorical: bool = True, rows: int = 240, seed: int = 0):
    """Featurizer, featurized rows and schema of raw_imbalanced()."""
    frame, schema = raw_imbalanced(classes, categorical, rows, seed)
    featurizer, features, _ = featurize(train=frame, validation=frame.head(3), schema=schema, config=FeaturizeParams())
    return featurizer, features, schema


def run(name: str, classes: int = 2, categorical: bool = True, config: SamplingParams = CONFIG):
    featurizer, features, _ = imbalanced(classes, categorical)
    X, y = features.drop(columns=["y"]), features["y"].to_numpy()
    X_out, y_out, summary = balance(
        X=X, y=y, task="classification", one_hot=one_hot_groups(featurizer), sampler=name, config=config, seed=0
    )
    return X, y, X_out, y_out, summary


def test_registry_names_match_params():
    assert set(SAMPLERS) | {"auto"} == set(registry("samplers"))


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"none"}))
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("categorical", [True, False])
def test_every_sampler_balances_and_keeps_categories_valid(name, classes, categorical):
    X, y, X_out, y_out, summary = run(name, classes, categorical)
    counts = np.bincount(y_out)
    assert summary["sampler_used"] == name
    assert counts.max() / counts.min() < np.bincount(y).max() / np.bincount(y).min()
    assert list(X_out.columns) == list(X.columns)
    for column in ("flag", "missingindicator_x") if "missingindicator_x" in X else ("flag",):
        assert set(np.unique(X_out[column])) <= {0.0, 1.0}
    if categorical:
        one_hot = X_out[["c_a", "c_b", "c_c"]].to_numpy()
        assert set(np.unique(one_hot)) <= {0.0, 1.0}
        assert (one_hot.sum(axis=1) == 1).all()  # every synthetic row has exactly one category


def test_oversampling_to_a_requested_ratio():
    _, y, _, y_out, _ = run("random_over", config=SamplingParams(sampling_strategy=0.5))
    majority = np.bincount(y).max()
    assert np.bincount(y_out).tolist() == [majority, int(majority * 0.5)]


def test_smote_auto_strategy_equalizes_binary_classes():
    _, y, _, y_out, _ = run("smote")
    assert np.bincount(y_out).tolist() == [np.bincount(y).max()] * 2


def test_undersampling_keeps_all_minority_rows():
    _, y, _, y_out, _ = run("random_under")
    assert np.bincount(y_out).tolist() == [np.bincount(y).min()] * 2


def test_original_rows_are_kept_by_oversamplers():
    X, y, X_out, y_out, _ = run("smote")
    pd.testing.assert_frame_equal(X_out.head(len(X)), X.reset_index(drop=True), check_dtype=False)
    assert (y_out[: len(y)] == y).all()


@pytest.mark.parametrize(
    "y,expected",
    [
        (np.array([0] * 60 + [1] * 40), "none"),  # ratio 1.5: balanced enough
        (np.array([0] * 90 + [1] * 10), "smote"),  # ratio 9
        (np.array([0] * 97 + [1] * 3), "random_over"),  # 3 minority rows ≤ k_neighbors 5
        (np.array([0] * 45 + [1] * 45 + [2] * 10), "smote"),  # multiclass, smallest class drives the ratio
    ],
)
def test_auto_decision_from_the_target(y, expected):
    decision = resolve_sampler(sampler="auto", task="classification", y=y, config=CONFIG)
    assert decision.sampler == expected
    assert decision.imbalance_ratio == pytest.approx(np.bincount(y).max() / np.bincount(y).min())


def test_auto_turns_balancing_off_for_regression():
    assert resolve_sampler(sampler="auto", task="regression", y=np.arange(10.0), config=CONFIG).sampler == "none"


def test_too_few_minority_rows_for_k_neighbors_names_both_numbers():
    featurizer, features, _ = imbalanced()
    y = features["y"].to_numpy()
    minority = np.bincount(y).min()
    with pytest.raises(UserError, match=rf"sampling\.k_neighbors: must be below.*k_neighbors 50 with {minority} rows"):
        balance(
            X=features.drop(columns=["y"]),
            y=y,
            task="classification",
            one_hot=one_hot_groups(featurizer),
            sampler="smote",
            config=SamplingParams(k_neighbors=50),
            seed=0,
        )


def test_impossible_strategy_is_a_user_error():
    with pytest.raises(UserError, match=r"sampler: cannot resample the training rows"):
        run("random_over", classes=3, config=SamplingParams(sampling_strategy=0.5))


def test_saved_model_has_no_sampler_and_predicts_every_row(tmp_path):
    featurizer, features, schema = imbalanced()
    model, summary = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters={"n_estimators": 10},
        seed=0,
        sampler="smote",
        sampling=CONFIG,
    )
    assert type(model.estimator).__name__ == model.estimator_name == "RandomForestClassifier"
    assert summary["training_rows_resampled"] > summary["training_rows"]
    served.save(model, tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as bundle:  # featurizer, decisions and trees: no sampler
        members = set(bundle.namelist())
    assert members == {"manifest.json", "schema.json", "featurizer.json", "decision.json", "forest.bin"}
    loaded = served.load(tmp_path / "model.zip")
    raw = pd.DataFrame({"x": [0.1, 2.0], "z": [0.0, 0.0], "flag": [True, False], "c": ["a", "new"]})
    assert len(loaded.predict(raw)) == 2
    assert (loaded.predict(raw) == model.predict(raw)).all()


def test_categorical_groups_cover_one_hot_and_flags():
    featurizer, features, _ = imbalanced()
    X = features.drop(columns=["y"])
    groups = categorical_groups(list(X.columns), one_hot_groups(featurizer), X)
    named = [[X.columns[i] for i in g] for g in groups]
    assert ["c_a", "c_b", "c_c"] in named and ["flag"] in named and ["x"] not in named


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"none"}))
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("categorical", [True, False])
def test_every_sampler_trains_a_model_that_predicts_raw_rows(name, classes, categorical):
    frame, schema = raw_imbalanced(classes, categorical, rows=300)
    train, validation = frame.iloc[:240], frame.iloc[240:]
    featurizer, features, held = featurize(train=train, validation=validation, schema=schema, config=FeaturizeParams())
    model, summary = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="lightgbm",
        hyperparameters={"n_estimators": 20, "min_child_samples": 5, "n_jobs": 1},
        seed=0,
        sampler=name,
        sampling=CONFIG,
        validation=held,
    )
    assert summary["sampler_used"] == name
    assert summary["training_rows_resampled"] != summary["training_rows"]
    probabilities = model.predict_proba(validation.drop(columns=["y"]))
    assert probabilities.shape == (len(validation), classes)
    assert np.allclose(probabilities.sum(axis=1), 1)


@pytest.mark.parametrize("cv_folds", [0, 3])
@pytest.mark.parametrize(
    "name,balanced_to",
    [("smote", "majority"), ("random_over", "majority"), ("adasyn", None), ("random_under", "minority")],
)
def test_held_out_rows_are_never_resampled_and_fit_rows_follow_the_strategy(cv_folds, name, balanced_to):
    frame, schema = raw_imbalanced(rows=300)
    train, validation = frame.iloc[:240], frame.iloc[240:]
    folds = build_folds(
        train=train,
        validation=validation,
        schema=schema,
        cv_folds=cv_folds,
        featurize=FeaturizeParams(),
        sampler=name,
        sampling=CONFIG,
        seed=0,
    )
    held_counts = sum(np.bincount(fold.y_held, minlength=2) for fold in folds)
    source = validation if cv_folds == 0 else train  # every held-out row once, as it was
    assert held_counts.tolist() == np.bincount(source["y"], minlength=2).tolist()
    for fold in folds:
        assert len(fold.X_held) == len(fold.y_held)
        fit_counts = np.bincount(fold.y)
        original = len(source) - len(fold.y_held) if cv_folds else len(train)
        if balanced_to == "majority":
            assert fit_counts[0] == fit_counts[1] and fit_counts.sum() > original
        elif balanced_to == "minority":
            assert fit_counts[0] == fit_counts[1] and fit_counts.sum() < original
        else:  # adasyn: the minority class grows to about the majority's size
            assert fit_counts[1] > 0.8 * fit_counts[0] and fit_counts.sum() > original
