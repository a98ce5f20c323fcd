"""Batch scoring: `reprotab predict` and the library under it (reprotab/serving/predict.py, scoring.py)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.incoming import clean_incoming
from reprotab.errors import UserError
from reprotab.model import served
from reprotab.serving.predict import errors_path, main, predict_file
from reprotab.serving.scoring import local_version, resolve_model
from tests.helpers import train_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return train_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def model(model_path):
    return served.load(model_path)


@pytest.fixture(scope="module")
def batch():
    return generate(rows=700, seed=11)


def expected(model, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(frame.assign(total_charges=pd.to_numeric(frame["total_charges"], errors="coerce")))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_chunked_scores_match_the_model(tmp_path, model, batch, suffix):
    source = tmp_path / f"batch.{suffix}"
    batch.to_csv(source, index=False) if suffix == "csv" else batch.to_parquet(source, index=False)
    out = tmp_path / "scored.parquet"
    summary = predict_file(model, version="v1", input=source, output=out, chunk_rows=64, block_bytes=8192)
    assert summary == {"rows": 700, "scored": 700, "failed": 0}
    scored = pd.read_parquet(out)
    assert list(scored.columns) == [
        "customer_id", "prediction", "proba_False", "proba_True", "threshold", "model_version"
    ]  # fmt: skip
    assert scored["customer_id"].tolist() == batch["customer_id"].tolist()
    assert (scored["prediction"].to_numpy() == expected(model, batch)).all()
    proba = model.predict_proba(batch.assign(total_charges=pd.to_numeric(batch["total_charges"], errors="coerce")))
    np.testing.assert_allclose(scored[["proba_False", "proba_True"]].to_numpy(), proba)
    assert (scored["threshold"] == model.decision_threshold).all()
    assert set(scored["model_version"]) == {"v1"}
    assert not errors_path(out).exists()


def test_without_id_column_rows_are_numbered(tmp_path, model, batch):
    source = tmp_path / "batch.parquet"
    batch.drop(columns=["customer_id"]).head(50).to_parquet(source)
    predict_file(model, version="v1", input=source, output=tmp_path / "out.parquet", chunk_rows=16)
    assert pd.read_parquet(tmp_path / "out.parquet")["row"].tolist() == list(range(50))


def test_missing_columns_are_named_with_did_you_mean_before_scoring(tmp_path, model, batch):
    source = tmp_path / "batch.parquet"
    batch.rename(columns={"tenure_months": "tenure_month"}).drop(columns=["region"]).to_parquet(source)
    out = tmp_path / "out.parquet"
    expected = r"lacks 2 feature column.*Got \['tenure_months', 'region'\]\. Rename 'tenure_month' to 'tenure_months'"
    with pytest.raises(UserError, match=expected):
        predict_file(model, version="v1", input=source, output=out)
    assert not out.exists()


def test_extra_columns_are_ignored_with_one_note(tmp_path, model, batch, caplog):
    source = tmp_path / "batch.parquet"
    batch.head(20).assign(notes="x", score_2=1.0).to_parquet(source)
    with caplog.at_level(logging.INFO, logger="reprotab.serving.predict"):
        predict_file(model, version="v1", input=source, output=tmp_path / "out.parquet")
    notes = [r.getMessage() for r in caplog.records if "does not use" in r.getMessage()]
    assert notes == ["ignoring 4 column(s) the model does not use: churned, next_month_spend, notes, score_2"]


def test_values_are_cleaned_as_training_cleaned_them(model):
    rows = generate(rows=4, seed=2)
    rows["total_charges"] = [" 12.5 ", "", "n/a", "inf"]
    rows["has_partner"] = ["True", "false", None, "1"]
    found = clean_incoming(rows, model.schema, featurizer=model.plan, where="rows", min_share=0.5)
    cleaned = found.frame
    assert cleaned["total_charges"].tolist()[0] == 12.5
    assert cleaned["total_charges"].isna().tolist() == [False, True, True, True]
    assert cleaned["has_partner"].tolist()[:2] == [1.0, 0.0] and cleaned["has_partner"].tolist()[3] == 1.0
    note = found.notes["total_charges"]  # "n/a" is not a number, "inf" is infinite, blanks are missing
    assert (note.text, note.text_examples, note.infinite, note.missing) == (1, ("n/a",), 1, 3)


def test_rows_the_model_cannot_score_go_to_a_side_file(tmp_path, model, batch):
    rows = batch.head(100).copy()
    rows.loc[[5, 77], "monthly_charges"] = 1e300  # beyond float32: the forest refuses these rows
    source = tmp_path / "batch.parquet"
    rows.to_parquet(source)
    out = tmp_path / "out.parquet"
    summary = predict_file(model, version="v1", input=source, output=out, chunk_rows=32)
    assert summary == {"rows": 100, "scored": 98, "failed": 2}
    errors = pd.read_csv(errors_path(out))
    assert errors["row"].tolist() == [5, 77]
    assert errors["id"].tolist() == rows["customer_id"].iloc[[5, 77]].tolist()
    assert errors["error"].str.contains("too large").all()
    scored = pd.read_parquet(out)
    assert len(scored) == 98 and set(rows["customer_id"].iloc[[5, 77]]).isdisjoint(scored["customer_id"])


def test_a_failure_mid_way_leaves_no_file_and_keeps_the_previous_output(tmp_path, model, batch):
    good = tmp_path / "batch.csv"
    batch.to_csv(good, index=False)
    broken = tmp_path / "broken.csv"
    lines = good.read_text().splitlines()
    lines.insert(600, "C9,not,enough,columns")  # a parse error far past the first block
    broken.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    predict_file(model, version="old", input=good, output=out)
    before = out.read_bytes()
    with pytest.raises(UserError, match="cannot be read after row"):
        predict_file(model, version="new", input=broken, output=out, chunk_rows=50, block_bytes=4096)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv", "broken.csv", "out.parquet"]


def test_resolve_model_file_version_and_commit(model_path):
    _, info = resolve_model(model_path)
    assert info["version"] == local_version(model_path) and info["version"].startswith("local:")
    assert len(info["version"]) == len("local:") + 12
    assert info["commit"] is None and info["path"] == str(model_path)
    with pytest.raises(UserError, match="one of --model, --stage, --version"):
        resolve_model(model_path, stage="prod")


def test_cli_predict_writes_output_and_exits_2_on_user_errors(tmp_path, model_path, batch, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batch.head(30).to_csv("in.csv", index=False)
    main(["--input", "in.csv", "--output", "out/scored.parquet", "--model", str(model_path), "--chunk-rows", "7"])
    assert len(pd.read_parquet("out/scored.parquet")) == 30
    with pytest.raises(SystemExit) as exit_:
        main(["--input", "missing.csv", "--output", "x.parquet", "--model", str(model_path)])
    assert exit_.value.code == 2


def test_csv_output_is_csv_with_the_same_rows(tmp_path, model, batch):
    source = tmp_path / "batch.parquet"
    batch.head(40).to_parquet(source)
    predict_file(model, version="v1", input=source, output=tmp_path / "out.parquet", chunk_rows=16)
    predict_file(model, version="v1", input=source, output=tmp_path / "out.csv", chunk_rows=16)
    assert not (tmp_path / "out.csv").read_bytes().startswith(b"PAR1")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out.csv"), pd.read_parquet(tmp_path / "out.parquet"))


@pytest.mark.parametrize(
    ("output", "message"),
    [("existing_dir", r"--output: is a directory\. Got '.*existing_dir'"), ("out.txt", r"--output: must end in")],
)
def test_a_bad_output_is_refused_before_the_model_is_loaded(tmp_path, monkeypatch, capsys, output, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "in.csv").write_text("a\n1\n")
    with pytest.raises(SystemExit) as exit:
        main(["--input", "in.csv", "--output", output, "--model", "no-such-model.zip"])  # never opened
    assert exit.value.code == 2
    errors = capsys.readouterr().err
    assert re.search(message, errors) and "no-such-model" not in errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing_dir", "in.csv", "reports"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--input", "in.csv", "--output", "out.parquet", "--workers", "2"],
            r"--workers/--scheduler: apply to a folder",
        ),
        (["--input", "parts", "--output", "out.parquet"], r"--output: must be a folder when --input is one"),
        (
            ["--input", "parts", "--output", "scored", "--workers", "-1"],
            r"--workers: must be 0 \(this process\) or more",
        ),
    ],
)
def test_folder_scoring_arguments_are_checked_before_the_model_is_loaded(
    tmp_path, monkeypatch, capsys, arguments, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parts").mkdir()
    (tmp_path / "in.csv").write_text("a\n1\n")
    with pytest.raises(SystemExit) as exit:
        main([*arguments, "--model", "no-such-model.zip"])  # never opened
    assert exit.value.code == 2
    errors = capsys.readouterr().err
    assert re.search(message, errors) and "no-such-model" not in errors, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "parts", "reports"]
