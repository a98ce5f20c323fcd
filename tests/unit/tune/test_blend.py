"""model: ensemble: greedy selection over out-of-fold predictions, and the blend train fits."""

import numpy as np
import pytest

from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.params.sections import TuneParams
from reprotab.train.ensemble import EnsembleClassifier, EnsembleRegressor, check_members
from reprotab.train.families import build_estimator
from reprotab.train.fit import trained_family
from reprotab.tune import blend
from reprotab.tune import search as tuning
from reprotab.tune.best import BestParams
from tests.helpers import base_params
from tests.unit.tune.test_tuning import make_search, split  # noqa: F401  (split: the shared fixture)

BASES = {
    "random_forest": {"n_estimators": 15, "n_jobs": 1},
    "xgboost": {"n_estimators": 60, "n_jobs": 1},
    "lightgbm": {"n_estimators": 60, "n_jobs": 1},
    "linear": {"alpha": 1.0},
}
SPACE = {
    "random_forest": {"max_depth": {"low": 2, "high": 8}},
    "xgboost": {"max_depth": {"low": 2, "high": 6}},
    "lightgbm": {"num_leaves": {"low": 4, "high": 31}},
    "linear": {"alpha": {"low": 0.01, "high": 100.0, "log": True}},
}


def blend_search(split, *, trials: int, name: str):  # noqa: F811
    """A model: ensemble search of `trials` random trials over BASES: (search, study, kept predictions)."""
    search = make_search(split, early=10)
    search = tuning.Search(**{**search.__dict__, "model": "ensemble", "bases": BASES})
    tune = TuneParams(space=SPACE, n_trials=trials, timeout_minutes=None, pruning=False)
    spaces = {family: tune.search_space(kind="space", model=family, task="classification") for family in BASES}
    predictions: dict = {}
    study = tuning.run(
        search=search, tuner="random", spaces=spaces, config=tune, storage=None, name=name, predictions=predictions
    )
    return search, study, predictions


@pytest.fixture(scope="module")
def blended(split):  # noqa: F811
    return blend_search(split, trials=10, name="blend")


def test_every_complete_trial_keeps_its_out_of_fold_predictions(blended):
    search, study, predictions = blended
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert set(predictions) == {t.number for t in complete}
    y = tuning.out_of_fold_targets(search)
    assert len(y) == sum(len(f.y_held) for f in search.folds)
    for trial in complete:  # every row predicted once, as probabilities, scoring about the trial's value
        kept = predictions[trial.number]
        assert kept.shape == (len(y), 2) and np.allclose(kept.sum(axis=1), 1.0)
        pooled = tuning.score_predictions(kept, y, metric="roc_auc", schema=search.schema)
        assert pooled == pytest.approx(trial.value, abs=0.02)


def test_the_blend_is_never_worse_than_the_best_single_trial_on_the_out_of_fold_rows(blended):
    search, study, predictions = blended
    best = blend.best_result(study, search=search, predictions=dict(predictions))
    members = best["params"]["members"]
    assert best["model"] == "ensemble" and 1 <= len(members) <= blend.ROUNDS
    assert sum(m["weight"] for m in members) == pytest.approx(1.0, abs=1e-9)
    check_members(members)  # what train will accept
    record = best["ensemble"]
    assert record["out_of_fold_score"] >= record["best_single_out_of_fold_score"]
    assert best["best_score"] == record["out_of_fold_score"]
    for m in members:  # full hyperparameters: the family's base under the trial's values
        assert BASES[m["model"]].items() <= {**m["hyperparameters"], **BASES[m["model"]]}.items()
    assert trained_family("ensemble", BestParams.from_dict({"tuner": "random", **best})) == "ensemble"


def test_a_resumed_study_evaluates_its_earlier_trials_again(blended):
    search, study, predictions = blended
    fresh = blend.best_result(study, search=search, predictions={})  # as if every trial ran in another process
    assert fresh["params"] == blend.best_result(study, search=search, predictions=dict(predictions))["params"]


def test_greedy_selection_with_replacement_weights_by_picks():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])

    class Schema:
        task, classes, positive_class = "classification", (0, 1), 1

    fake = tuning.Search(
        folds=[], schema=Schema(), model="ensemble", bases={}, metric="roc_auc", seed=0, early_stopping_rounds=None
    )
    # each alone ranks one pair wrong; their mean ranks every row right
    a = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.75, 0.6])
    b = np.array([0.1, 0.9, 0.2, 0.8, 0.65, 0.7, 0.3, 0.6])
    noise = np.array([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4])
    pool = [np.column_stack((1 - p, p)) for p in (a, b, noise)]
    counts, score = blend.greedy(pool, y, search=fake, rounds=6)
    assert score == 1.0 > max(tuning.score_predictions(p, y, metric="roc_auc", schema=Schema()) for p in pool)
    assert counts[2] == 0 and counts[0] >= 1 and counts[1] >= 1


def test_the_ensemble_estimator_is_the_weighted_mean_of_its_members(split):  # noqa: F811
    search = make_search(split)
    fold = search.folds[0]
    members = [
        {"model": "lightgbm", "hyperparameters": {"n_estimators": 20, "n_jobs": 1}, "weight": 0.75},
        {"model": "linear", "hyperparameters": {"alpha": 3.0}, "weight": 0.25},
    ]
    ensemble = build_estimator(model="ensemble", task="classification", hyperparameters={"members": members}, seed=1)
    assert isinstance(ensemble, EnsembleClassifier)
    ensemble.fit(fold.X, fold.y)
    alone = [
        build_estimator(model=m["model"], task="classification", hyperparameters=m["hyperparameters"], seed=1).fit(
            fold.X, fold.y
        )
        for m in members
    ]
    expected = 0.75 * alone[0].predict_proba(fold.X_held) + 0.25 * alone[1].predict_proba(fold.X_held)
    assert np.allclose(ensemble.predict_proba(fold.X_held), expected)
    assert [m["model"] for m in ensemble.describe()] == ["lightgbm", "linear"]
    regressor = build_estimator(
        model="ensemble",
        task="regression",
        hyperparameters={"members": [{**members[1], "weight": 1.0}]},
        seed=1,
    )
    assert isinstance(regressor, EnsembleRegressor)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([], r"must be a list of 1 to 50 members"),
        ([{"model": "lightgbm", "weight": 0.5}], r"has weights that do not sum to 1"),
        ([{"model": "lightgbn", "weight": 1.0}], r"members\[0\]\.model: is not a model family"),
        ([{"model": "linear", "weight": 0}], r"members\[0\]\.weight: must be a number in \(0, 1\]"),
        ([{"model": "linear", "weight": 1.0, "extra": 1}], r"has unknown keys \[.extra.\]"),
    ],
)
def test_malformed_members_are_named(members, message):
    with pytest.raises(UserError, match=message):
        check_members(members)


@pytest.mark.parametrize("tuner", ["none", "grid"])
def test_model_ensemble_needs_a_sampled_search(tuner):
    with pytest.raises(
        UserError,
        match=rf"model: ensemble blends the search's best trials, so it needs tuner random or optuna, not {tuner}",
    ):
        parse_params(base_params(model="ensemble", tuner=tuner))


def test_train_fits_the_blend_or_the_single_model_that_beat_it():
    empty = BestParams.from_dict({"tuner": "optuna", "model": "ensemble", "params": {}})
    with pytest.raises(UserError, match=r"holds no ensemble, which model: ensemble needs"):
        trained_family("ensemble", empty)
    with pytest.raises(UserError, match=r"holds no ensemble, which model: ensemble needs"):
        trained_family("ensemble", BestParams.from_dict({"tuner": "none", "model": "ensemble"}))
    single = BestParams.from_dict({"tuner": "optuna", "model": "catboost", "params": {}})  # tune.confirm's choice
    assert trained_family("ensemble", single) == "catboost"


def test_only_the_predictions_a_blend_can_use_are_kept(split, monkeypatch):  # noqa: F811
    monkeypatch.setattr(tuning, "KEEP_PREDICTIONS", 3)
    search, study, predictions = blend_search(split, trials=9, name="few")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best_three = sorted(complete, key=lambda t: -t.value)[:3]
    family_best = {}
    for trial in sorted(complete, key=lambda t: -t.value):
        family_best.setdefault(trial.params["model"], trial.number)
    assert set(predictions) == {t.number for t in best_three} | set(family_best.values())
    assert len(predictions) < len(complete)
    assert blend.best_result(study, search=search, predictions=predictions)["params"]["members"]


def test_an_ensemble_file_naming_a_key_twice_is_refused():
    from reprotab.model.boosters import BoosterError, EnsembleBooster

    twice = b'{"members": [], "members": []}'
    with pytest.raises(BoosterError, match="ensemble names a key twice"):
        EnsembleBooster.from_bytes(twice, kind="binary", n_classes=2, n_features=3)
