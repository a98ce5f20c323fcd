import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.prepare import (
    check_target,
    choose_batches,
    combine_batches,
    drop_useless,
    prepare,
    select_columns,
    split,
    text_to_numbers,
)
from reprotab.errors import UserError
from reprotab.params.sections import DataParams


def data(**kwargs) -> DataParams:
    return DataParams(**{"target": "y", **kwargs})


def test_missing_target_lists_columns_and_suggests_closest():
    frame = pd.DataFrame({"churned": [0, 1], "age": [1, 2]})
    with pytest.raises(
        UserError,
        match=r"data\.target: column not found\. Got 'churn'\. "
        r"Columns: churned, age\. Did you mean 'churned'\?",
    ):
        select_columns(frame, data=data(target="churn"))


def test_every_missing_column_is_reported():
    frame = pd.DataFrame({"y": [0, 1], "a": [1, 2]})
    with pytest.raises(UserError) as info:
        select_columns(frame, data=data(drop_columns=("b",), id_column="id"))
    assert "data.id_column: column not found. Got 'id'" in str(info.value)
    assert "data.drop_columns: column not found. Got 'b'" in str(info.value)


def test_text_numbers_become_numbers_and_blanks_become_missing():
    frame = pd.DataFrame({"total": ["1.5", " ", "3"], "city": ["a", "b", "3"], "y": [0, 1, 0]})
    out, converted = text_to_numbers(frame, min_share=0.95, skip={"y"})
    assert converted == ["total"]
    assert out["total"].tolist()[0] == 1.5 and np.isnan(out["total"].tolist()[1])
    assert out["city"].tolist() == ["a", "b", "3"]


def test_text_numbers_parse_each_row_as_its_own_value():
    """Distinct values are parsed once (prepare.text_to_numbers): the result must be what parsing
    every row gives, row for row, and the share that converts a column counts rows, not values."""
    rng = np.random.default_rng(0)
    numbers = np.array(["1.5", " 2 ", "", None, "1e3", "-0", 7, 2.5, float("nan"), "  "], dtype=object)
    frame = pd.DataFrame(
        {
            "numbers": [*rng.choice(numbers, size=1999), "abc"],  # one text value among numbers and blanks
            "mostly": [*(str(i) for i in range(1900)), *["x"] * 100],  # 95.0 % of the rows parse
            "rare": ["5"] * 100 + [f"id{i}" for i in range(1900)],  # one value of 1,901 is a number
        }
    )

    def row_by_row(column: str) -> pd.Series:
        text = frame[column].astype("string").str.strip().replace("", pd.NA)
        return pd.to_numeric(text, errors="coerce").astype(float)

    out, converted = text_to_numbers(frame, min_share=0.95, skip=set())
    assert converted == ["numbers", "mostly"]
    for column in converted:
        np.testing.assert_array_equal(out[column].to_numpy(), row_by_row(column).to_numpy())
    assert out["rare"].equals(frame["rare"])
    _, converted = text_to_numbers(frame, min_share=0.951, skip=set())
    assert converted == ["numbers"]
    # values Python holds equal but writes differently are parsed apart (True is text, 1 a number)
    flags = pd.DataFrame({"c": [1, True, 0, False, "2", -0.0, [1, 2]]}, dtype=object)
    out, converted = text_to_numbers(flags, min_share=0.5, skip=set())
    assert converted == ["c"]
    np.testing.assert_array_equal(out["c"].to_numpy(), [1.0, np.nan, 0.0, np.nan, 2.0, -0.0, np.nan])
    assert np.signbit(out["c"].to_numpy()[5])
    assert text_to_numbers(flags, min_share=0.6, skip=set())[1] == []  # 4 of 7 rows parse


def test_empty_and_constant_columns_are_dropped_but_target_kept():
    frame = pd.DataFrame({"empty": [None, None, None], "same": [7, 7, 7], "x": [1, 2, 3], "y": [1, 1, 1]})
    out, empty, constant = drop_useless(frame, keep={"y"})
    assert (empty, constant) == (["empty"], ["same"])
    assert list(out.columns) == ["x", "y"]


def test_target_with_one_class_is_an_error():
    with pytest.raises(UserError, match=r"must have at least two classes.*Got \"only \['yes'\]\""):
        check_target(pd.DataFrame({"y": ["yes"] * 5}), target="y", task="classification")


def test_regression_on_text_target_is_an_error():
    with pytest.raises(UserError, match=r"data\.target 'y': must be numeric for task regression"):
        check_target(pd.DataFrame({"y": ["a", "b"] * 6}), target="y", task="regression")


def test_class_too_small_to_split_is_an_error():
    frame = pd.DataFrame({"y": [0] * 20 + [1] * 2})
    with pytest.raises(UserError, match=r"needs at least 3 rows of every class.*\{1: 2\}"):
        check_target(frame, target="y", task="classification")


def test_rows_without_target_are_dropped():
    frame = pd.DataFrame({"y": [1.0, None, 2.0] * 5})
    assert len(check_target(frame, target="y", task="regression")) == 10


def test_split_is_stratified_disjoint_and_seeded():
    frame = pd.DataFrame({"id": range(100), "y": [1] * 10 + [0] * 90})
    parts = split(frame, target="y", task="classification", test_size=0.2, validation_size=0.2, seed=1)
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [60, 20, 20]
    assert [int(parts[s]["y"].sum()) for s in ("train", "validation", "test")] == [6, 2, 2]
    ids = [set(parts[s]["id"]) for s in parts]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    again = split(frame, target="y", task="classification", test_size=0.2, validation_size=0.2, seed=1)
    assert parts["test"]["id"].tolist() == again["test"]["id"].tolist()


def test_prepare_end_to_end_on_demo_sample(churn_small):
    _splits, schema, summary = prepare(
        churn_small,
        task="classification",
        seed=0,
        data=data(target="churned", id_column="customer_id", drop_columns=("next_month_spend",)),
        test_size=0.2,
        validation_size=0.2,
        text_min_share=0.95,
    )
    assert schema.classes == (False, True) and schema.positive_class is True
    assert "total_charges" in schema.numeric and "contract" in schema.categorical
    assert "customer_id" not in schema.features and "next_month_spend" not in schema.features
    assert summary["cleaning"]["text_to_number"] == ["total_charges"]
    assert sum(summary[s]["rows"] for s in ("train", "validation", "test")) == len(churn_small)


def test_prepare_regression_on_demo_sample(churn_small):
    _splits, schema, _ = prepare(
        churn_small,
        task="regression",
        seed=0,
        data=data(target="next_month_spend", id_column="customer_id"),
        test_size=0.2,
        validation_size=0.2,
        text_min_share=0.95,
    )
    assert schema.classes == () and "churned" in schema.numeric


def test_batches_are_chosen_in_file_name_order():
    names = ["2026-11.parquet", "2026-09.csv", ".gitkeep", "2026-10.parquet", "2026-10.parquet.dvc", "notes.txt"]
    assert choose_batches(names, combine="none", window=2) == []
    assert choose_batches(names, combine="all", window=2) == ["2026-09.csv", "2026-10.parquet", "2026-11.parquet"]
    assert choose_batches(names, combine="window", window=2) == ["2026-10.parquet", "2026-11.parquet"]


def test_prepare_with_two_batches_all_vs_window(churn_small):
    october, november = generate(rows=300, seed=21, drift=0.3), generate(rows=200, seed=22, drift=0.5)
    november["extra"] = 1  # a column the reference lacks is dropped
    batches = {"2026-10.parquet": october, "2026-11.parquet": november}
    rows = {}
    for combine in ("all", "window"):
        chosen = choose_batches(list(batches), combine=combine, window=1)
        frame = combine_batches(churn_small, {name: batches[name] for name in chosen})
        splits, _schema, _ = prepare(
            frame,
            task="classification",
            seed=0,
            data=data(target="churned", id_column="customer_id", drop_columns=("next_month_spend",)),
            test_size=0.2,
            validation_size=0.2,
            text_min_share=0.95,
        )
        assert "extra" not in splits["train"].columns
        rows[combine] = sum(len(part) for part in splits.values())
    assert rows == {"all": 600 + 300 + 200, "window": 600 + 200}


def test_batch_lacking_a_reference_column_is_an_error(churn_small):
    batch = generate(rows=50, seed=21).rename(columns={"contract": "contract_type"})
    with pytest.raises(UserError, match=r"batch b\.csv: lacks columns of the reference table\. Got 'contract'\."):
        combine_batches(churn_small, {"b.csv": batch})


def demo_settings() -> dict:
    return {
        "task": "classification",
        "seed": 0,
        "data": data(target="churned", id_column="customer_id", drop_columns=("next_month_spend",)),
        "test_size": 0.2,
        "validation_size": 0.2,
        "text_min_share": 0.95,
    }


def test_each_file_is_split_on_its_own_so_reference_test_rows_never_move(churn_small):
    """data.path's test rows are the same with or without batches (the gate's frozen reference
    relies on it), and a batch's split does not depend on the batches beside it."""
    settings = demo_settings()
    october, november = generate(rows=300, seed=21, drift=0.3), generate(rows=200, seed=22, drift=0.5)
    october["customer_id"] = october["customer_id"].astype(str) + "-oct"
    november["customer_id"] = november["customer_id"].astype(str) + "-nov"
    alone, _, _ = prepare(churn_small, **settings)
    both, _, _ = prepare(
        pd.concat([churn_small, october, november], ignore_index=True), **settings, source_rows=[600, 300, 200]
    )
    one, _, _ = prepare(pd.concat([churn_small, november], ignore_index=True), **settings, source_rows=[600, 200])

    def ids(splits, part, suffix=None):
        found = splits[part]["customer_id"].astype(str)
        return set(found[found.str.endswith(suffix)] if suffix else found[~found.str.contains("-")])

    for part in ("train", "validation", "test"):
        assert ids(both, part) == ids(alone, part) == ids(one, part)
        assert ids(both, part, "-nov") == ids(one, part, "-nov")
    assert len(ids(both, "test", "-oct")) == 60


def test_a_one_class_batch_is_split_without_strata_and_a_tiny_one_goes_to_train(churn_small):
    settings = demo_settings()
    poisoned = generate(rows=100, seed=3).assign(churned=True)
    tiny = generate(rows=5, seed=4)
    splits, _, _ = prepare(
        pd.concat([churn_small, poisoned, tiny], ignore_index=True), **settings, source_rows=[600, 100, 5]
    )
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [360 + 60 + 5, 120 + 20, 120 + 20]
