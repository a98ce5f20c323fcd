"""dvc.yaml is the contract: each stage runs its module and declares exactly the params it reads."""

import importlib

import pytest
import yaml

from tests.conftest import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = ["prepare", "featurize", "tune", "train", "evaluate"]


def test_stages_are_the_five_in_order():
    assert list(PIPELINE["stages"]) == STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_stage_runs_its_module_and_declares_its_params(stage):
    entry = PIPELINE["stages"][stage]
    module = importlib.import_module(f"stages.{stage}")
    assert entry["cmd"] == f"python -m stages.{stage}"
    assert tuple(entry["params"]) == module.PARAMS
    assert f"stages/{stage}.py" in entry["deps"]


def test_model_is_declared_as_an_artifact():
    assert PIPELINE["artifacts"]["model"] == {
        **PIPELINE["artifacts"]["model"],
        "path": "models/model.joblib",
        "type": "model",
    }
