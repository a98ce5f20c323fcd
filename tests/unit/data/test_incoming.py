"""The one cleaning policy for rows that arrive after training (reprotab/data/incoming.py): each note on
tiny frames with a real fitted featurizer, then the same file through `predict` and the monitor."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.incoming import (
    ColumnNote,
    NotNumbers,
    clean_incoming,
    learned_categories,
    log_notes,
    merge_notes,
    require_features,
)
from reprotab.errors import UserError
from reprotab.model.featurizer import fit_featurizer
from reprotab.model.schema import Schema
from reprotab.monitoring.verdict import monitor
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams, MonitorParams
from reprotab.pipeline import run
from reprotab.serving.predict import predict_file
from tests.helpers import base_params, reference_of

SCHEMA = Schema(task="regression", target="y", numeric=("x",), categorical=("color", "city"), id_column="id")
TRAIN = pd.DataFrame(
    {
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
        "color": ["red", "blue", "red", "green", None, "blue", "red", "green", "blue", "red"],
        "city": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],  # more than max_categories: target-encoded
        "y": [1.0, 2.0, 1.5, 3.0, 2.5, 2.0, 1.0, 3.5, 2.0, 1.0],
    }
)


@pytest.fixture(scope="module")
def featurizer():
    fitted, _ = fit_featurizer(TRAIN, schema=SCHEMA, config=FeaturizeParams(max_categories=5))
    return fitted


def rows(**columns):
    """Four incoming rows, with the given columns replaced."""
    frame = pd.DataFrame({"id": [10, 11, 12, 13], "x": [1.0, 2.0, 3.0, 4.0], "color": ["red"] * 4, "city": ["a"] * 4})
    return frame.assign(**columns)


def test_learned_categories_come_from_both_encoders(featurizer):
    known = learned_categories(featurizer)
    assert known["color"] == {"red", "blue", "green", "__missing__"}
    assert known["city"] == set("abcdefghij")


def test_text_that_is_not_a_number_becomes_missing_and_is_counted(featurizer):
    x = [" 2.5 ", "", None, "unknown", "7", "8", "9", "10", "oops", "12"]
    frame = pd.DataFrame({"id": range(10), "x": x, "color": ["red"] * 10, "city": ["a"] * 10})
    cleaned = clean_incoming(frame, SCHEMA, featurizer=featurizer, where="t", min_share=0.75)
    assert cleaned.frame["x"].tolist()[:1] + cleaned.frame["x"].tolist()[4:8] == [2.5, 7.0, 8.0, 9.0, 10.0]
    assert cleaned.frame["x"].isna().tolist() == [False, True, True, True, False, False, False, False, True, False]
    assert cleaned.notes["x"] == ColumnNote(
        rows=10, missing=4, text=2, text_examples=("unknown", "oops"), share=0.75
    )  # 6 of the 8 present values are numbers
    assert list(cleaned.frame.columns) == ["id", "x", "color", "city"]


def test_a_numeric_column_mostly_text_is_refused_naming_it(featurizer):
    frame = rows(x=["abc", "def", "1", None])
    with pytest.raises(
        NotNumbers, match=r"t: numeric features hold text .* Got \{'x': \"33% numbers, e.g. 'abc', 'def'\"\}"
    ):
        clean_incoming(frame, SCHEMA, featurizer=featurizer, where="t")
    try:
        clean_incoming(frame, SCHEMA, featurizer=featurizer, where="t")
    except NotNumbers as exc:
        assert exc.rows == {"x": [0, 1]} and exc.notes["x"].share == pytest.approx(1 / 3, abs=1e-6)


def test_booleans_and_their_words_are_one_and_zero(featurizer):
    cleaned = clean_incoming(rows(x=["true", " FALSE ", True, 0]), SCHEMA, featurizer=featurizer, where="t")
    assert cleaned.frame["x"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert cleaned.notes["x"] == ColumnNote(rows=4, share=1.0)


@pytest.mark.parametrize("x", [[np.inf, -np.inf, 1.0, 2.0], ["inf", "-Infinity", "1", "2"]], ids=["numbers", "text"])
def test_infinities_become_missing_and_are_counted(featurizer, x):
    cleaned = clean_incoming(rows(x=x), SCHEMA, featurizer=featurizer, where="t")
    assert cleaned.frame["x"].isna().tolist() == [True, True, False, False]
    assert cleaned.notes["x"] == ColumnNote(rows=4, missing=2, infinite=2, share=1.0)


def test_unseen_categories_are_kept_and_counted_per_column(featurizer):
    frame = rows(color=["red", "mauve", "mauve", None], city=["zz", "a", "b", "yy"])
    cleaned = clean_incoming(frame, SCHEMA, featurizer=featurizer, where="t")
    assert cleaned.frame["color"].tolist()[:3] == ["red", "mauve", "mauve"] and cleaned.frame["color"].isna()[3]
    assert cleaned.notes["color"] == ColumnNote(rows=4, missing=1, unseen=2, unseen_examples=("mauve",))
    assert cleaned.notes["city"] == ColumnNote(rows=4, unseen=2, unseen_examples=("zz", "yy"))
    assert cleaned.report()["columns"]["city"]["unseen_examples"] == ["zz", "yy"]


def test_each_changed_column_is_logged_once_in_one_grammar(featurizer, caplog):
    frame = rows(x=[np.inf, 1.0, 2.0, None], color=["red", "mauve", "red", "red"])
    cleaned = clean_incoming(frame, SCHEMA, featurizer=featurizer, where="--input b.csv")
    with caplog.at_level(logging.WARNING, logger="reprotab.data.incoming"):
        log_notes(cleaned.notes, where="--input b.csv")
    assert [r.getMessage() for r in caplog.records] == [
        "--input b.csv: column 'x': 1 of 4 values are infinite, treated as missing",
        "--input b.csv: column 'color': 1 of 4 values are categories the model never saw (e.g. 'mauve'), "
        "encoded as unseen",
    ]
    assert cleaned.report() == {
        "rows": 4,
        "columns": {
            "x": {**_empty(4), "missing": 2, "infinite": 1, "share": 1.0},
            "color": {**_empty(4), "unseen": 1, "unseen_examples": ["mauve"]},
        },
    }


def _empty(rows: int) -> dict:
    keys = ("missing", "text", "text_examples", "infinite", "unseen", "unseen_examples", "share")
    return {"rows": rows} | {k: [] if k.endswith("examples") else None if k == "share" else 0 for k in keys}


def test_notes_of_chunks_add_up():
    first = {"x": ColumnNote(rows=4, missing=1, text=1, text_examples=("a",), share=0.75)}
    second = {"x": ColumnNote(rows=6, missing=0, text=0, share=1.0)}
    merged = merge_notes(merge_notes({}, first), second)
    assert merged["x"] == ColumnNote(rows=10, missing=1, text=1, text_examples=("a",), share=0.9)  # 9 of 10


def test_a_missing_feature_gets_a_rename_from_the_unused_columns_never_the_target():
    schema = Schema(task="regression", target="colour_code", numeric=("x",), categorical=("color",), id_column="id")
    with pytest.raises(UserError, match=r"^in: lacks 1 feature column\(s\) .*Got \['color'\]\. Add them\.$"):
        require_features(["id", "x", "colour_code"], schema, where="in")  # the target is close, never proposed
    with pytest.raises(UserError, match=r"Got \['x', 'color'\]\. Rename 'colour' to 'color' and add the others\.$"):
        require_features(["colour", "colour_code", "notes"], schema, where="in")
    assert require_features(["id", "x", "color", "colour_code", "notes"], schema, where="in") == [
        "colour_code",
        "notes",
    ]


def test_a_column_training_never_used_is_never_proposed_as_a_rename():
    """The demo's regression target sits in data.drop_columns of the churn model: a missing
    feature must not be 'renamed' from it."""
    schema = Schema(
        task="classification", target="churned", numeric=("spend",), categorical=(), ignored=("spend_next",)
    )
    with pytest.raises(UserError, match=r"Got \['spend'\]\. Add them\.$"):
        require_features(["spend_next", "churned"], schema, where="in")
    assert Schema.from_dict(schema.to_dict()) == schema


# --- the same file through `predict` and the monitor ------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    raw = base_params(hyperparameters={"random_forest": {"n_estimators": 20, "min_samples_leaf": 5, "n_jobs": 1}})
    params = parse_params(raw)
    return run(generate(rows=2000, seed=0), params), params


def _damaged(kind: str) -> pd.DataFrame:
    batch = generate(rows=200, seed=11)
    if kind == "text-100%":
        batch["total_charges"] = "unknown"
    elif kind == "text-2%":
        batch.loc[:3, "total_charges"] = "unknown"
    elif kind == "unseen":
        batch["region"] = "mars"
    elif kind == "inf":
        batch.loc[:1, "monthly_charges"] = [np.inf, -np.inf]
    return batch


VERDICTS = {
    "text-100%": "numeric features hold text that is not numbers (at least 95% of the present values must be). "
    "Got {'total_charges': \"0% numbers, e.g. 'unknown'\"}",
    "text-2%": "column 'total_charges': 4 of 200 values are not numbers (e.g. 'unknown'), treated as missing",
    "unseen": "column 'region': 200 of 200 values are categories the model never saw (e.g. 'mars'), encoded as unseen",
    "inf": "column 'monthly_charges': 2 of 200 values are infinite, treated as missing",
}


@pytest.mark.parametrize("kind", list(VERDICTS))
def test_predict_and_monitor_give_the_same_verdict_and_notes(trained, tmp_path, caplog, kind):
    result, params = trained
    source = tmp_path / "batch.csv"
    _damaged(kind).to_csv(source, index=False)
    batch = pd.read_csv(source)  # what `reprotab monitor --batch` reads (reprotab/data/tables.py read_table)
    said = {}
    for tool in ("predict", "monitor"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="reprotab.data.incoming"):
            try:
                if tool == "predict":
                    predict_file(result.model, version="v1", input=source, output=tmp_path / "out.parquet")
                else:
                    verdict = monitor(
                        model=result.model,
                        reference=reference_of(result),
                        batch=batch,
                        config=MonitorParams(bootstrap=0),
                        metric=params.metric,
                        seed=0,
                    )
            except UserError as exc:
                said[tool] = str(exc).split(": ", 1)[1]
            else:
                said[tool] = "\n".join(r.getMessage().split(": ", 1)[1] for r in caplog.records)
    assert said["predict"] == said["monitor"]
    assert said["predict"].startswith(VERDICTS[kind])
    if kind != "text-100%":
        column = VERDICTS[kind].split("'")[1]
        assert verdict.report["cleaning"]["rows"] == 200 and column in verdict.report["cleaning"]["columns"]
