import json

import pytest

from reprotab.errors import UserError
from reprotab.params.loader import Params, StageParams, load_params, parse_params
from reprotab.params.sections import AUDIT_ENV, registry
from reprotab.stats import metrics
from reprotab.train.families import MODELS
from reprotab.train.sampling import SAMPLERS
from tests.helpers import ROOT, base_params


def test_shipped_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.task == "classification"
    assert params.data.target == "churned"


def test_unknown_model_names_choices_and_suggests():
    with pytest.raises(
        UserError,
        match=r"model: must be one of random_forest, xgboost, lightgbm, catboost, linear, auto, ensemble\. "
        r"Got 'xgbost'\. Did you mean 'xgboost'\?",
    ):
        parse_params(base_params(model="xgbost"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"tuner": "none"},
            r"model: auto lets the search choose the family, so it needs tuner random or optuna, not none",
        ),
        (
            {"tuner": "grid"},
            r"needs tuner random or optuna, not grid\. Got 'auto'\. Set tuner: optuna, or name one model",
        ),
        (
            {"tuner": "optuna", "train": {"init_model": "models/previous.zip"}},
            r"model: auto cannot continue a previous model: train\.init_model fixes the family",
        ),
        (
            {"tuner": "optuna", "tune": {"space": {"lightgbm": {}}}},
            r"tune\.space\.random_forest: is empty, so tuner optuna has nothing to search",  # each family needs one
        ),
    ],
)
def test_model_auto_needs_a_sampled_search_over_every_family(overrides, message):
    assert parse_params(base_params(model="auto", tuner="optuna")).model == "auto"
    with pytest.raises(UserError, match=message):
        parse_params(base_params(model="auto", **overrides))


def test_model_auto_checks_the_hyperparameters_of_every_family():
    from reprotab.params.checks import params_problems

    raw = base_params(model="auto", tuner="random")
    raw["hyperparameters"]["xgboost"]["n_estimators"] = -3
    assert params_problems(parse_params(raw)) == [
        "hyperparameters.xgboost.n_estimators: must be an int in the range [1, inf). Got -3."
    ]


def test_unknown_task_is_reported():
    with pytest.raises(UserError, match=r"task: must be one of classification, regression\. Got 'regresion'"):
        parse_params(base_params(task="regresion"))


def test_every_problem_is_reported_at_once():
    raw = base_params(model="xgbost", seed=-1, prepare={"test_size": 1.5}, featurize={"scal": True})
    with pytest.raises(UserError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "model: must be one of" in message
    assert "seed: input should be greater than or equal to 0. Got -1." in message
    assert "prepare.test_size: input should be less than 1. Got 1.5." in message
    assert "featurize.scal: is not a known key." in message and "Did you mean 'scale'?" in message


def test_unknown_top_level_key_lists_known_keys():
    with pytest.raises(
        UserError,
        match=r"sampeler: is not a known key\. Known keys here: task, model.*"
        r"Did you mean 'sampler'\?",
    ):
        parse_params({**base_params(), "sampeler": "smote"})


def test_metric_must_fit_task():
    with pytest.raises(
        UserError,
        match=r"metric \(task regression\): must be one of rmse, mae, r2, mape\. "
        r"Got 'roc_auc'.*is a classification metric",
    ):
        parse_params(base_params(task="regression", metric="roc_auc"))


def test_missing_target_is_required():
    raw = base_params()
    del raw["data"]["target"]
    with pytest.raises(UserError, match=r"data\.target: is required\."):
        parse_params(raw)


def test_split_sizes_must_leave_training_rows():
    with pytest.raises(UserError, match=r"test_size \+ validation_size: must be below 0\.9"):
        parse_params(base_params(prepare={"test_size": 0.5, "validation_size": 0.45}))


def test_params_file_must_be_a_mapping(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(UserError, match=r"params\.yaml: must be a mapping of keys to values\. Got 'list'"):
        load_params(path)


def test_names_in_params_match_the_registries():
    """Each registry implements exactly the names params accepts (reprotab/params/names.py)."""
    from reprotab.tune.tuners import TUNERS

    assert registry("models") == tuple(MODELS)
    assert registry("samplers") == ("none", "auto", *list(SAMPLERS)[1:])
    assert registry("tuners") == ("none", *TUNERS)
    assert registry("metrics") == {task: tuple(table) for task, table in metrics.BY_TASK.items()}


def test_stage_view_refuses_undeclared_keys(params):
    view = StageParams(params, stage="train", keys=("featurize",))
    assert view.featurize.scale is False
    with pytest.raises(AttributeError, match=r"stage 'train' reads params key 'seed' that it does not declare"):
        _ = view.seed


def test_a_stage_records_the_keys_it_read_without_asking(params, tmp_path, monkeypatch):
    """stage_main records each view's reads after main succeeds (the dvc.yaml audit); a failed
    stage records nothing."""
    from reprotab.runner import stage_main

    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv(AUDIT_ENV, str(audit))
    monkeypatch.chdir(tmp_path)  # stage_main writes reports/logs/ here

    @stage_main("probe")
    def main(argv: list[str] | None = None) -> None:
        view = StageParams(params, stage="probe", keys=("seed", "metric", "model"))
        _ = view.seed, view.metric

    @stage_main("broken")
    def broken(argv: list[str] | None = None) -> None:
        _ = StageParams(params, stage="broken", keys=("seed",)).seed
        raise UserError("broken: fails on purpose")

    main([])
    with pytest.raises(SystemExit):
        broken([])
    main([])
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    assert rows == [{"stage": "probe", "read": ["metric", "seed"]}] * 2


def test_stage_view_rejects_unknown_declared_keys(params):
    with pytest.raises(KeyError, match="unknown params keys"):
        StageParams(params, stage="x", keys=("nope",))


def test_params_are_frozen(params):
    with pytest.raises(Exception, match="frozen"):
        params.seed = 1  # type: ignore[misc]
    assert isinstance(params, Params)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            {"sampler": "adasin"},
            r"sampler: must be one of none, auto, random_over, .*\. Got 'adasin'\. Did you mean 'adasyn'\?",
        ),
        (
            {"sampling": {"sampling_strategy": "minorty"}},
            r"sampling\.sampling_strategy: must be one of auto, minority, .*Got 'minorty'\. Did you mean 'minority'\?",
        ),
        (
            {"sampling": {"sampling_strategy": 1.5}},
            r"sampling\.sampling_strategy: must be a number in \(0, 1\] or a name\. Got 1\.5\.",
        ),
        (
            {"task": "regression", "metric": "rmse", "sampler": "smote"},
            r"sampler: balances classes, so it applies to classification only\. Got 'smote'\. "
            r"Use sampler: none \(or auto",
        ),
        ({"sampling": {"k_neighbors": 0}}, r"sampling\.k_neighbors: input should be greater than or equal to 1"),
    ],
)
def test_bad_sampler_settings_are_reported(overrides, message):
    with pytest.raises(UserError, match=message):
        parse_params(base_params(**overrides))


def test_hyperparameters_take_a_block_per_task_over_the_shared_settings():
    from reprotab.params.loader import hyperparameters_for

    params = parse_params(base_params())
    forest = dict(n_estimators=300, min_samples_leaf=5, n_jobs=-1)
    assert hyperparameters_for(params.hyperparameters, model="random_forest", task="classification") == {
        **forest,
        "max_features": "sqrt",
    }
    assert hyperparameters_for(params.hyperparameters, model="random_forest", task="regression") == {
        **forest,
        "max_features": 1.0,
    }
    assert hyperparameters_for(params.hyperparameters, model="xgboost", task="regression")["max_depth"] == 5


def test_a_hyperparameter_set_both_shared_and_in_a_task_block_is_refused():
    raw = base_params()
    raw["hyperparameters"]["random_forest"]["max_features"] = 0.5
    with pytest.raises(UserError, match=r"hyperparameters\.random_forest: sets max_features both for every task"):
        parse_params(raw)
    raw = base_params()
    raw["hyperparameters"]["random_forest"]["regresion"] = {"max_features": 0.5}
    with pytest.raises(UserError, match=r"hyperparameters\.random_forest\.regresion: takes a single value.*regression"):
        parse_params(raw)


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("rounds", [-3, 0, 2.5])
def test_booster_rounds_are_checked_before_any_stage_runs(model, rounds):
    from reprotab.train.families import hyperparameter_value_problems

    problems = hyperparameter_value_problems(
        model=model, task="classification", hyperparameters={"n_estimators": rounds}
    )
    assert problems == [f"hyperparameters.{model}.n_estimators: must be an int in the range [1, inf). Got {rounds}."]
    assert hyperparameter_value_problems(model=model, task="classification", hyperparameters={"n_estimators": 7}) == []


def test_high_cardinality_encoding_is_one_of_the_known_ones():
    assert parse_params(base_params()).featurize.high_cardinality == "target"
    assert parse_params(base_params(featurize={"high_cardinality": "one_hot"})).featurize.high_cardinality == "one_hot"
    with pytest.raises(
        UserError,
        match=r"featurize\.high_cardinality: must be one of one_hot, target\. Got 'targt'\. Did you mean 'target'\?",
    ):
        parse_params(base_params(featurize={"high_cardinality": "targt"}))
