"""Bad input through the real stage entry points: one clear message, exit 2, no traceback,
and nothing already written is touched."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.helpers import ROOT, base_params, tool_env

pytestmark = pytest.mark.integration  # every test runs a stage as its own python process


def run_stage(stage: str, cwd, params: dict) -> subprocess.CompletedProcess:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=tool_env({"PYTHONPATH": str(ROOT)}),
    )


def write(cwd, name: str, frame: pd.DataFrame) -> str:
    (cwd / "data").mkdir(exist_ok=True)
    frame.to_csv(cwd / "data" / name, index=False)
    return f"data/{name}"


def data_params(path: str, **data) -> dict:
    return base_params(data={"path": path, "id_column": None, "drop_columns": [], **data})


def good_frame() -> pd.DataFrame:
    return pd.DataFrame({"x": range(30), "label": ["a", "b", "c"] * 10, "amount": [1.5] * 29 + [2.0]})


CASES = {
    "data path missing": (
        lambda cwd: data_params("data/nope.csv", target="label"),
        r"data\.path: file not found\. Got 'data/nope\.csv'",
    ),
    "file empty": (
        lambda cwd: (
            (cwd / "data").mkdir(exist_ok=True),
            (cwd / "data/e.csv").write_text(""),
            data_params("data/e.csv", target="label"),
        )[-1],
        r"data\.path: file is empty",
    ),
    "target missing": (
        lambda cwd: data_params(write(cwd, "t.csv", good_frame()), target="lable"),
        r"data\.target: column not found\. Got 'lable'\. Columns: x, label, amount\. "
        r"Did you mean 'label'\?",
    ),
    "one class": (
        lambda cwd: data_params(write(cwd, "t.csv", good_frame().assign(label="a")), target="label"),
        r"must have at least two classes",
    ),
    "regression on text": (
        lambda cwd: {
            **data_params(write(cwd, "t.csv", good_frame()), target="label"),
            "task": "regression",
            "metric": "rmse",
        },
        r"must be numeric for task regression",
    ),
    "unknown model": (
        lambda cwd: {**data_params("data/x.csv", target="label"), "model": "xgbost"},
        r"model: must be one of random_forest, xgboost, lightgbm, catboost, linear, auto, ensemble\. Got 'xgbost'\. "
        r"Did you mean 'xgboost'\?",
    ),
    "unknown task": (
        lambda cwd: {**data_params("data/x.csv", target="label"), "task": "clasification"},
        r"task: must be one of classification, regression\. Got 'clasification'",
    ),
    "unknown key": (
        lambda cwd: {**data_params("data/x.csv", target="label"), "modle": "xgboost"},
        r"modle: is not a known key",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_prepare_rejects_bad_input_cleanly(tmp_path, case):
    make_params, message = CASES[case]
    result = run_stage("prepare", tmp_path, make_params(tmp_path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert pd.Series([result.stderr]).str.contains(message).all(), result.stderr
    assert not (tmp_path / "data/prepared").exists()


def test_failed_stage_leaves_previous_outputs_untouched(tmp_path):
    path = write(tmp_path, "t.csv", good_frame())
    assert run_stage("prepare", tmp_path, data_params(path, target="label")).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "data/prepared").iterdir()}
    result = run_stage("prepare", tmp_path, data_params(path, target="lable"))
    assert result.returncode == 2
    assert {p: p.read_bytes() for p in (tmp_path / "data/prepared").iterdir()} == before
