"""A search that does not overfit small tables: repeated folds, stopping at the noise, and a final
check of its choice against the shipped configuration on the validation split."""

import numpy as np
import optuna
import pytest

from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams, SamplingParams, TuneParams
from reprotab.tune import confirm
from reprotab.tune import search as tuning
from tests.helpers import base_params
from tests.unit.tune.test_tuning import make_search, split  # noqa: F401  (split: the shared fixture)


@pytest.mark.parametrize(
    ("settings", "rows", "repeats"),
    [
        ({}, 300, 5),
        ({}, 4000, 3),
        ({}, 8000, 2),
        ({}, 20000, 1),
        ({"cv_folds": 0}, 300, 1),
        ({"cv_repeats": 2}, 20000, 2),
    ],
)
def test_auto_repeats_the_cv_more_on_small_tables(settings, rows, repeats):
    assert TuneParams(**settings).repeats(rows) == repeats


@pytest.mark.parametrize("value", [0, "twice", True])
def test_a_bad_repeat_count_is_named(value):
    with pytest.raises(UserError, match=r"tune\.cv_repeats: must be auto or an integer of at least 1"):
        parse_params(base_params(tune={"cv_repeats": value}))


def test_repeated_folds_hold_every_row_out_once_per_repeat_and_average_its_predictions(split):  # noqa: F811
    splits, schema = split
    folds = tuning.build_folds(
        train=splits["train"],
        validation=splits["validation"],
        schema=schema,
        cv_folds=3,
        cv_repeats=2,
        featurize=FeaturizeParams(),
        sampler="none",
        sampling=SamplingParams(),
        seed=0,
    )
    assert len(folds) == 6 and {f.share for f in folds} == {0.5}
    held = np.concatenate([f.held_rows for f in folds])
    assert np.array_equal(np.bincount(held), np.full(len(splits["train"]), 2))
    assert folds[0].held_rows.tolist() != folds[3].held_rows.tolist()  # a new shuffle per repeat
    search = tuning.Search(**{**make_search(split).__dict__, "folds": folds})
    keep = np.zeros(tuning.out_of_fold_shape(search))
    evaluation = tuning.evaluate({}, search, keep=keep)
    assert len(evaluation.fold_scores) == 6
    assert np.allclose(keep.sum(axis=1), 1.0)  # two halves of two probability rows


def test_the_search_stops_once_trials_stop_beating_the_best_by_more_than_its_noise(split):  # noqa: F811
    search = make_search(split)
    search = tuning.Search(**{**search.__dict__, "model": "linear", "bases": {"linear": {"alpha": 1.0}}})
    tune = TuneParams(
        space={"linear": {"alpha": {"low": 1.0, "high": 1.001}}}, n_trials=40, timeout_minutes=None, patience=4
    )
    spaces = {"linear": tune.search_space(kind="space", model="linear", task="classification")}
    study = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=None, name="flat")
    assert len(study.trials) == 5  # the first sets the best, four more without a real gain
    assert study.user_attrs["stopped_early"] == 4
    assert all(t.user_attrs["noise"] > 0 for t in study.trials)
    tune = TuneParams(space=tune.space, n_trials=8, timeout_minutes=None, patience=None)
    study = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=None, name="all")
    assert len(study.trials) == 8


def _params(**tune):
    return parse_params(base_params(model="random_forest", tuner="random", tune=tune))


def test_the_check_keeps_the_shipped_configuration_when_the_tuned_one_is_worse_on_validation(split):  # noqa: F811
    splits, _ = split
    search = make_search(split)
    search = tuning.Search(**{**search.__dict__, "bases": {"random_forest": {"n_estimators": 30, "n_jobs": 1}}})
    worse = {
        "model": "random_forest",
        "params": {"max_depth": 1, "max_features": 1, "n_estimators": 1},
        "best_score": 0.99,
    }
    kept = confirm.confirm(
        worse, search=search, train=splits["train"], validation=splits["validation"], params=_params()
    )
    assert kept["params"] == {} and kept["confirmed"]["chosen"] == "shipped"
    assert kept["confirmed"]["validation"]["shipped"] > kept["confirmed"]["validation"]["tuned"]

    stump = tuning.Search(**{**search.__dict__, "bases": {"random_forest": worse["params"]}})
    better = {"model": "random_forest", "params": {"max_depth": 2, "max_features": "sqrt", "n_estimators": 30}}
    kept = confirm.confirm(
        better, search=stump, train=splits["train"], validation=splits["validation"], params=_params()
    )
    assert kept["params"] == better["params"] and kept["confirmed"]["chosen"] == "tuned"


def test_the_check_is_skipped_when_the_search_scored_on_validation(split):  # noqa: F811
    splits, _ = split
    search = make_search(split, cv_folds=0)
    study = tuning.run(
        search=search,
        tuner="random",
        spaces={"random_forest": {}},
        config=TuneParams(n_trials=1, timeout_minutes=None),
        storage=None,
        name="holdout",
    )
    best = confirm.result(
        study,
        search=search,
        predictions=None,
        train=splits["train"],
        validation=splits["validation"],
        params=_params(cv_folds=0),
    )
    assert "tune.cv_folds 0" in best["confirmed"]["skipped"]


def test_a_study_patience_stopped_is_not_resumed_with_the_same_budget(split):  # noqa: F811
    search = make_search(split)
    search = tuning.Search(**{**search.__dict__, "model": "linear", "bases": {"linear": {"alpha": 1.0}}})
    space = {"linear": {"alpha": {"low": 1.0, "high": 1.001}}}
    tune = TuneParams(space=space, n_trials=40, timeout_minutes=None, patience=3)
    spaces = {"linear": tune.search_space(kind="space", model="linear", task="classification")}
    storage = optuna.storages.InMemoryStorage()
    first = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=storage, name="s")
    assert len(first.trials) == 4 and first.user_attrs["stopped_at"] == 40
    again = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=storage, name="s")
    assert len(again.trials) == 4  # the same n_trials: nothing more to learn
    more = TuneParams(space=space, n_trials=41, timeout_minutes=None, patience=3)
    resumed = tuning.run(search=search, tuner="random", spaces=spaces, config=more, storage=storage, name="s")
    assert 4 < len(resumed.trials) <= 8  # resumed, and its patience starts from the study's best


def test_a_catboost_setting_the_model_file_cannot_hold_is_found_by_validate():
    from reprotab.params.checks import params_problems

    raw = base_params(hyperparameters={"catboost": {"n_estimators": 10, "grow_policy": "Depthwise"}})
    problems = params_problems(parse_params(raw))
    assert (
        len(problems) == 1 and "hyperparameters.catboost: rejected by catboost (CatBoost model must have" in problems[0]
    )
