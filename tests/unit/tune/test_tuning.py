"""The search itself on small real data: every tuner, resuming, early stopping, bad spaces."""

import numpy as np
import optuna
import pytest

from reprotab.data.prepare import prepare
from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams, SamplingParams, TuneParams
from reprotab.train.fit import fit, merge_hyperparameters
from reprotab.tune import search as tuning
from reprotab.tune.best import BestParams
from reprotab.tune.report import no_search
from tests.helpers import base_params

SMALL = {
    "random_forest": {"n_estimators": 15, "n_jobs": 1},
    "xgboost": {"n_estimators": 60, "n_jobs": 1},
    "lightgbm": {"n_estimators": 60, "n_jobs": 1},
}


@pytest.fixture(scope="module")
def split(churn_small):
    p = parse_params(base_params())
    splits, schema, _ = prepare(
        churn_small, task="classification", seed=0, data=p.data, test_size=0.2, validation_size=0.2, text_min_share=0.95
    )
    return splits, schema


def make_search(split, *, model="random_forest", cv_folds=2, metric="roc_auc", sampler="none", early=None):
    splits, schema = split
    folds = tuning.build_folds(
        train=splits["train"],
        validation=splits["validation"],
        schema=schema,
        cv_folds=cv_folds,
        featurize=FeaturizeParams(),
        sampler=sampler,
        sampling=SamplingParams(),
        seed=0,
    )
    return tuning.Search(
        folds=folds,
        schema=schema,
        model=model,
        bases={model: SMALL[model]},
        metric=metric,
        seed=0,
        early_stopping_rounds=early,
    )


def config(tuner: str, model: str, **space) -> tuple[TuneParams, dict]:
    kind = tuning.TUNERS[tuner].kind
    tune = TuneParams(**{kind: {model: space}}, n_trials=4, timeout_minutes=None)
    return tune, tune.search_space(kind=kind, model=model, task="classification")


@pytest.mark.parametrize(
    ("tuner", "space"),
    [
        ("grid", {"max_depth": [2, 6], "min_samples_leaf": [1, 10]}),
        ("random", {"max_depth": {"low": 2, "high": 6}, "max_features": {"low": 0.2, "high": 0.9}}),
        ("optuna", {"max_depth": {"low": 2, "high": 6}, "criterion": {"choices": ["gini", "entropy"]}}),
    ],
)
def test_each_tuner_finds_params_inside_its_space_and_train_uses_them(split, tuner, space):
    search = make_search(split)
    tune, resolved = config(tuner, "random_forest", **space)
    study = tuning.run(
        search=search, tuner=tuner, spaces={search.model: resolved}, config=tune, storage=None, name=f"t-{tuner}"
    )
    best = tuning.best_result(study, search=search)
    assert best["trials"]["complete"] == 4
    for name, value in best["params"].items():
        spec = resolved[name]
        if isinstance(spec, tuple):
            assert value in spec
        elif spec.choices is not None:
            assert value in spec.choices
        else:
            assert spec.low <= value <= spec.high
    # the found values reach the fitted estimator through train's merge
    splits, schema = split
    from reprotab.model.featurizer import featurize

    featurizer, features, _ = featurize(
        train=splits["train"], validation=splits["validation"], schema=schema, config=FeaturizeParams()
    )
    model, _ = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=merge_hyperparameters(defaults=SMALL["random_forest"], tuned=best["params"]),
        seed=0,
    )
    fitted = model.estimator.get_params()
    assert {k: fitted[k] for k in best["params"]} == best["params"]


def test_grid_tries_every_point_once(split):
    search = make_search(split)
    tune, space = config("grid", "random_forest", max_depth=[2, 4, 6])
    study = tuning.run(
        search=search, tuner="grid", spaces={search.model: space}, config=tune, storage=None, name="grid"
    )
    assert sorted(t.params["max_depth"] for t in study.trials) == [2, 4, 6]


def in_journal(journal: str, search, *, tuner: str, space: dict, config: TuneParams, name: str) -> optuna.Study:
    """One tuning run whose study lives in a journal file, so a second call continues it."""
    storage = tuning.open_storage(None, journal)
    return tuning.run(
        search=search, tuner=tuner, spaces={search.model: space}, config=config, storage=storage, name=name
    )


def test_rerunning_with_more_trials_continues_the_study(split, tmp_path):
    search = make_search(split)
    journal = str(tmp_path / "study.journal")
    tune, space = config("optuna", "random_forest", max_depth={"low": 2, "high": 8})
    first = in_journal(journal, search, tuner="optuna", space=space, config=tune, name="s")
    assert len(first.trials) == 4
    first_params = [t.params for t in first.trials]
    more = tune.model_copy(update={"n_trials": 7})
    second = in_journal(journal, search, tuner="optuna", space=space, config=more, name="s")
    assert len(second.trials) == 7
    assert [t.params for t in second.trials[:4]] == first_params


def test_the_starting_point_is_the_shipped_hyperparameters_inside_the_space():
    from reprotab.params.sections import Distribution
    from reprotab.tune.space import starting_point

    space = {
        "learning_rate": Distribution(low=0.01, high=0.3, log=True),  # base 0.05
        "num_leaves": Distribution(low=8, high=256, log=True),  # base 31
        "min_child_samples": Distribution(low=5, high=100, log=True),  # not in base: lightgbm's 20
        "reg_lambda": Distribution(low=0.001, high=10.0, log=True),  # lightgbm's 0 is clipped up
        "subsample": Distribution(low=0.5, high=0.7),  # base 0.8 is clipped down
        "n_estimators": Distribution(low=60, high=300, step=50),  # lightgbm's 100 snaps to the step
        "boosting_type": Distribution(choices=["dart", "goss"]),  # lightgbm's gbdt is not offered
    }
    base = {"learning_rate": 0.05, "num_leaves": 31, "subsample": 0.8, "n_jobs": 1}
    point = starting_point(space, model="lightgbm", task="classification", base=base)
    assert point == {
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "reg_lambda": 0.001,
        "subsample": 0.7,
        "n_estimators": 110,
    }
    assert all(type(point[k]) is int for k in ("num_leaves", "min_child_samples", "n_estimators"))


def test_the_starting_point_takes_xgboosts_own_defaults_where_its_wrapper_says_none():
    from reprotab.params.sections import Distribution
    from reprotab.tune.space import starting_point

    space = {
        "min_child_weight": Distribution(low=0.5, high=20.0, log=True),
        "reg_lambda": Distribution(low=0.001, high=10.0, log=True),
        "max_depth": Distribution(low=2, high=10),
    }
    point = starting_point(space, model="xgboost", task="classification", base={"max_depth": 5})
    assert point == {"min_child_weight": 1.0, "reg_lambda": 1.0, "max_depth": 5}


@pytest.mark.parametrize("tuner", ["random", "optuna"])
def test_a_new_search_tries_the_shipped_point_first_and_once(split, tmp_path, tuner):
    search = make_search(split)
    search = tuning.Search(
        **{**search.__dict__, "bases": {"random_forest": {**SMALL["random_forest"], "min_samples_leaf": 7}}}
    )
    tune, space = config(
        tuner, "random_forest", min_samples_leaf={"low": 1, "high": 50}, max_depth={"low": 2, "high": 8}
    )
    journal = str(tmp_path / "study.journal")
    first = in_journal(journal, search, tuner=tuner, space=space, config=tune, name="p")
    assert first.trials[0].params["min_samples_leaf"] == 7  # max_depth None (unlimited): left to the sampler
    more = tune.model_copy(update={"n_trials": 6})
    second = in_journal(journal, search, tuner=tuner, space=space, config=more, name="p")
    assert [t.number for t in second.trials if "fixed_params" in t.system_attrs] == [0]  # not enqueued again
    assert len(second.trials) == 6


def test_model_auto_searches_every_family_from_its_shipped_point(split):
    from reprotab.train.families import build_estimator
    from reprotab.train.fit import trained_family

    search = make_search(split)
    bases = {
        "random_forest": {**SMALL["random_forest"], "max_depth": 4},
        "xgboost": {**SMALL["xgboost"], "max_depth": 3, "learning_rate": 0.5},
        "lightgbm": SMALL["lightgbm"],
    }
    search = tuning.Search(**{**search.__dict__, "model": "auto", "bases": bases})
    tune = TuneParams(
        space={
            "random_forest": {"max_depth": {"low": 2, "high": 6}},
            "xgboost": {"max_depth": {"low": 2, "high": 6}, "learning_rate": {"low": 0.05, "high": 0.3}},
            "lightgbm": {"num_leaves": {"low": 4, "high": 31}},
        },
        n_trials=7,
        timeout_minutes=None,
    )
    spaces = {family: tune.search_space(kind="space", model=family, task="classification") for family in SMALL}
    study = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=None, name="auto")
    # the boosters' shipped points first (they stop early, so they cost least), then the forest's
    assert [t.params for t in study.trials[:3]] == [
        {"model": "xgboost", "xgboost.max_depth": 3, "xgboost.learning_rate": 0.3},  # 0.5 clipped into the range
        {"model": "lightgbm", "lightgbm.num_leaves": 31},  # lightgbm's own default
        {"model": "random_forest", "random_forest.max_depth": 4},
    ]
    for trial in study.trials:  # each family's names carry its prefix, so no two share a distribution
        assert all(name == "model" or name.startswith(f"{trial.params['model']}.") for name in trial.params)
    best = tuning.best_result(study, search=search)
    assert best["model"] in SMALL and set(best["by_model"]) == set(SMALL)
    assert best["by_model"][best["model"]]["best_score"] == best["best_score"]
    assert sum(family["complete"] for family in best["by_model"].values()) == 7
    assert set(best["params"]) <= {*spaces[best["model"]], "n_estimators"}  # decoded: no prefix, no model key
    assert trained_family("auto", BestParams.from_dict({"tuner": "random", **best})) == best["model"]
    importance = tuning.importances(study)  # over the winning family's trials: its own parameters
    assert len(importance) and all(name.startswith(f"{best['model']}.") for name in importance["param"])
    build_estimator(model=best["model"], task="classification", hyperparameters=best["params"], seed=0)
    assert tuning.evaluate(best["params"], search, family=best["model"])[0] == pytest.approx(best["best_score"])


def test_model_auto_says_which_family_never_competed(split, caplog):
    search = make_search(split)
    search = tuning.Search(**{**search.__dict__, "model": "auto", "bases": SMALL})
    tune = TuneParams(space={f: {"max_depth": {"low": 2, "high": 6}} for f in SMALL}, n_trials=2, timeout_minutes=None)
    spaces = {family: tune.search_space(kind="space", model=family, task="classification") for family in SMALL}
    study = tuning.run(search=search, tuner="random", spaces=spaces, config=tune, storage=None, name="two")
    best = tuning.best_result(study, search=search)  # two trials: the boosters' shipped points only
    assert best["by_model"]["random_forest"] == {"complete": 0, "best_score": None}
    assert "model auto: random_forest completed no trial, so it did not compete" in caplog.text


def test_train_refuses_model_auto_without_a_searched_family():
    from reprotab.train.fit import trained_family

    nothing = BestParams.from_dict({"tuner": "none", "params": {}})
    assert trained_family("xgboost", nothing) == "xgboost"
    message = r"models/best_params\.json: names no model family, which model: auto needs.*Run the tune stage"
    with pytest.raises(UserError, match=message):
        trained_family("auto", nothing)
    with pytest.raises(UserError, match=message):  # tuner none with model auto writes the word "auto"
        trained_family("auto", BestParams.from_dict(no_search(model="auto")))


def test_best_params_round_trip_and_refuse_a_malformed_file(tmp_path):
    path = tmp_path / "best_params.json"
    record = BestParams.from_dict(
        {"tuner": "optuna", "model": "xgboost", "params": {"max_depth": 3}, "best_score": 0.8}
    )
    record.write(path)
    assert BestParams.read(path) == record and record.details == {"best_score": 0.8}
    with pytest.raises(TypeError):
        record.params["max_depth"] = 4  # type: ignore[index]  # frozen: train cannot alter what tune found
    for bad, message in (
        ({"model": "xgboost"}, "has no tuner name"),
        ({"tuner": "optuna", "model": 3}, "names a model that is not a family name"),
        ({"tuner": "optuna", "params": [1]}, "holds params that are not a mapping"),
    ):
        with pytest.raises(UserError, match=message):
            BestParams.from_dict(bad)


def test_boosters_stop_early_inside_the_search_and_report_the_rounds(split):
    search = make_search(split, model="xgboost", early=5)
    search = tuning.Search(
        **{**search.__dict__, "bases": {"xgboost": {"n_estimators": 400, "learning_rate": 0.5, "n_jobs": 1}}}
    )
    score, rounds, _ = tuning.evaluate({"max_depth": 6}, search)
    assert 0.5 < score <= 1.0
    assert rounds is not None and rounds < 400


def test_lower_is_better_metrics_minimize(split):
    search = make_search(split, metric="log_loss")
    tune, space = config("random", "random_forest", max_depth={"low": 2, "high": 6})
    study = tuning.run(
        search=search, tuner="random", spaces={search.model: space}, config=tune, storage=None, name="ll"
    )
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_value == min(t.value for t in study.trials)


def test_hold_out_scores_on_the_validation_split(split):
    search = make_search(split, cv_folds=0)
    splits, _ = split
    assert len(search.folds) == 1 and len(search.folds[0].y_held) == len(splits["validation"])


def test_folds_never_resample_held_out_rows(split):
    search = make_search(split, sampler="random_over")
    splits, _ = split
    held = sum(len(f.y_held) for f in search.folds)
    assert held == len(splits["train"])  # each training row held out once, none invented
    assert all(len(f.y) > len(splits["train"]) - len(f.y_held) for f in search.folds)  # fit rows oversampled


def test_a_grid_value_the_estimator_rejects_is_named(split):
    search = make_search(split)
    with pytest.raises(UserError, match=r"tune\.grid\.random_forest\.max_features: value is rejected.*Got 'sqrtt'"):
        tuning.check_space(
            space={"max_features": ("sqrt", "sqrtt")},
            where="tune.grid.random_forest",
            search=search,
            model="random_forest",
        )


def test_an_unknown_hyperparameter_in_the_space_is_named(split):
    search = make_search(split)
    with pytest.raises(UserError, match=r"tune\.space\.random_forest\.max_dept: is not a parameter"):
        tuning.check_space(
            space={"max_dept": (3,)}, where="tune.space.random_forest", search=search, model="random_forest"
        )


def test_too_many_folds_for_the_smallest_class():
    with pytest.raises(UserError, match=r"tune\.cv_folds: must not exceed .* Got '5 folds with 3 rows'"):
        tuning.split_indices(y=np.array([0] * 20 + [1] * 3), cv_folds=5, task="classification", seed=0)


@pytest.mark.parametrize("url", ["postgresql://user:secret@127.0.0.1:1/db", "sqlite:////no/such/dir/study.db"])
def test_unreachable_storage_is_a_clear_error_without_the_password(url):
    with pytest.raises(UserError, match=r"tune\.storage: cannot be opened") as caught:
        storage = tuning.open_storage(url, "unused")
        optuna.create_study(storage=storage)
    assert "secret" not in str(caught.value)


def test_redact_hides_only_the_password():
    assert tuning.redact("postgresql://me:pw@host:5432/db") == "postgresql://me:***@host:5432/db"
    assert tuning.redact(None) is None and tuning.redact("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("tune", "message"),
    [
        ({"grid": {"random_forest": {}}}, r"tune\.grid\.random_forest: is empty, so tuner grid has nothing to search"),
        ({"space": {"random_forest": {"max_depth": {"low": 9, "high": 2}}}}, r"needs low below high \(low 9, high 2\)"),
        ({"grid": {"random_forest": {"max_depth": 3}}}, r"tune\.grid\.random_forest\.max_depth: must be a list"),
        ({"timeout_minutes": 0}, r"tune\.timeout_minutes: input should be greater than 0"),
        ({"cv_folds": 1}, r"tune\.cv_folds: must be 0 \(hold-out\) or at least 2"),
    ],
)
def test_bad_tune_params_are_clear(tune, message):
    raw = base_params(tuner="grid" if "grid" in tune else "random", model="random_forest")
    raw["tune"] = {**raw["tune"], **tune}
    if "grid" in tune:
        raw["tune"]["grid"] = tune["grid"]
    with pytest.raises(UserError, match=message):
        parse_params(raw)
