"""bench/quality.py's plumbing: params overrides and the typing the outside baselines get."""

import numpy as np
import pandas as pd
import pytest

from reprotab.errors import UserError
from tests.helpers import load_bench


@pytest.fixture(scope="module")
def quality():
    return load_bench("quality")


def test_overrides_reach_the_params_and_the_data_section_fits_the_table(quality):
    table = quality.TABLES["friedman"]
    params = quality.project_params(
        table,
        {"model": "lightgbm", "hyperparameters.random_forest.regression.max_features": 0.5, "tune.n_trials": 7},
    )
    assert (params.task, params.metric, params.model) == ("regression", "r2", "lightgbm")
    assert (params.data.target, params.data.id_column, list(params.data.drop_columns)) == ("y", None, [])
    assert params.hyperparameters["random_forest"]["regression"]["max_features"] == 0.5
    assert params.tune.n_trials == 7
    with pytest.raises(UserError, match="modle"):
        quality.project_params(table, {"modle": "lightgbm"})


def test_baselines_get_numbers_from_text_and_categories_with_training_levels(quality):
    numbers = ["1.5", "2", "3", "4"] * 5
    numbers[7] = "?"  # 1 in 20 does not parse: still a numeric column (the project's 95 % rule)
    train = pd.DataFrame({"n": numbers, "c": ["a", "b", None, "a"] * 5, "y": [0, 1] * 10})
    test = pd.DataFrame({"n": ["3", "x"], "c": ["b", "unseen"], "y": [0, 1]})
    x_train, x_test = quality.typed(train, test, "y")
    assert x_train["n"].dtype == float and np.isnan(x_test["n"].iloc[1])
    assert list(x_train["c"].cat.categories) == ["a", "b"] == list(x_test["c"].cat.categories)
    assert x_test["c"].isna().tolist() == [False, True]


def test_every_table_has_its_target_and_enough_imbalanced_ones(quality):
    kinds = {t.kind for t in quality.TABLES.values()}
    assert kinds == {"binary", "multiclass", "regression"}
    assert sum(t.imbalanced for t in quality.TABLES.values()) >= 3
    frame = quality.TABLES["messy_binary"].build()
    assert frame["label"].value_counts(normalize=True)["fraud"] < 0.1
    assert frame["merchant"].nunique() > 300 and frame["x0"].dtype == object


def test_several_splits_become_one_cell_with_its_spread(quality):
    outcome = quality.Outcome
    cell = quality.combine([outcome(0.90, 0.5, 2.0, extra={"estimator": "lgbm"}), outcome(0.94, 0.7, 4.0)])
    assert cell.score == pytest.approx(0.92) and cell.f1 == pytest.approx(0.6) and cell.seconds == 3.0
    assert cell.spread == pytest.approx(np.std([0.90, 0.94], ddof=1))
    assert cell.extra == {"estimator": ["lgbm", None]}
    failed = quality.combine([outcome(0.9), outcome(error="ValueError: bad")])
    assert failed.error == "ValueError: bad"
    single = outcome(0.9)
    assert quality.combine([single]) is single and single.spread is None


def test_each_seed_splits_differently_and_keeps_the_class_shares(quality):
    table = quality.TABLES["rare_event"]
    frame = table.build()
    first, _ = quality.split(frame, table, 42)
    second, _ = quality.split(frame, table, 43)
    assert not first.equals(second)
    share = frame[table.target].value_counts(normalize=True)
    for train in (first, second):
        assert train[table.target].value_counts(normalize=True).round(3).equals(share.round(3))


def test_public_and_shaped_tables_have_the_documented_shapes(quality):
    fair = quality.TABLES["fair"].build()
    assert len(fair) == 6366 and 0.25 < fair["affair"].mean() < 0.40
    star = quality.TABLES["star98"].build()
    assert star.shape == (303, 21) and star["above_share"].between(0, 1).all()
    assert quality.TABLES["grunfeld"].build()["firm"].nunique() == 11  # a category, not a number
    wide = quality.TABLES["wide_imbalanced"].build()
    assert wide.shape[1] == 86 and 0.08 < wide["uptake"].mean() < 0.12
    houses = quality.TABLES["wide_regression"].build()
    assert houses.shape == (1460, 81) and houses.isna().any().sum() == 3
    assert len(quality.TABLES) >= 12


def test_the_summary_checks_each_target_and_the_blend_against_its_own_best_single_trial(quality):
    outcome = quality.Outcome
    results = {
        "fair": {
            "default": outcome(0.75, spread=0.02),
            "lgbm": outcome(0.76),
            "ensemble": outcome(0.80, extra={"single": [0.79, 0.78]}),
            "flaml": outcome(0.79),
        },
        "grunfeld": {
            "default": outcome(0.86, spread=0.01),
            "lgbm": outcome(0.47),
            "ensemble": outcome(0.88, extra={"single": 0.90}),
            "flaml": outcome(0.89),
        },
    }
    lines = "\n".join(quality.summarize(results, ("default", "lgbm", "ensemble", "flaml")))
    assert "default >= LightGBM defaults within one sd, every table: 2/2 tables -> met" in lines
    assert "(info) default >= LightGBM defaults, strictly: 1/2 tables -> NOT met (behind on fair)" in lines
    assert "mean (default - lgbm) over 2 tables: +0.1900" in lines
    assert "ensemble >= FLAML on >= 5/6 of the tables (10 of 12): 1/2 tables -> NOT met (behind on grunfeld)" in lines
    assert "ensemble >= its search's best single trial on >= 5/6 of the tables: 1/2 tables -> NOT met" in lines
