"""reprotab/paths.py against dvc.yaml: every path it calls a pipeline output is one a stage
writes, every pipeline input one a stage reads, and no stage claims what the commands outside
the pipeline write."""

from __future__ import annotations

import re

import pytest
import yaml

from reprotab import paths
from tests.helpers import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def resolved(entry: str | dict) -> str:
    """A dvc.yaml path (a plain string, or a one-key mapping holding its options), with each
    `${params.key}` as the shipped params.yaml sets it."""
    path = entry if isinstance(entry, str) else next(iter(entry))

    def value(match: re.Match) -> str:
        found = PARAMS
        for key in match[1].split("."):
            found = found[key]
        return str(found)

    return re.sub(r"\$\{([\w.]+)\}", value, path).rstrip("/")


def written() -> set[str]:
    return {
        resolved(entry)
        for stage in PIPELINE["stages"].values()
        for section in ("outs", "metrics", "plots")
        for entry in stage.get(section) or []
    }


def read() -> set[str]:
    return {resolved(entry) for stage in PIPELINE["stages"].values() for entry in stage.get("deps") or []}


def within(path: str, declared: set[str]) -> bool:
    """`path` is declared, or lies in a declared folder."""
    return any(path == d or path.startswith(f"{d}/") for d in declared)


def constants() -> dict[str, str]:
    return {name: value for name, value in vars(paths).items() if name.isupper() and isinstance(value, str)}


def test_every_path_constant_is_of_exactly_one_kind():
    kinds = [*paths.OUTPUTS, *paths.INPUTS, *paths.OPERATIONS]
    assert len(kinds) == len(set(kinds))
    assert sorted(kinds) == sorted(constants().values())


# Files a stage writes into a folder it declares, which no stage reads: dvc.yaml cannot name them.
UNNAMED_IN_DVC_YAML = {paths.IMPORTANCE}


@pytest.mark.parametrize("path", paths.OUTPUTS)
def test_pipeline_outputs_are_written_by_a_stage(path):
    outs = written()
    if path in outs or any(out.startswith(f"{path}/") for out in outs):  # an output, or a folder of outputs
        return
    assert within(path, outs), f"{path}: no stage in dvc.yaml writes it (outs, metrics or plots)"
    # inside a folder a stage writes: a stage that reads it names it, which pins its spelling
    assert path in read() or path in UNNAMED_IN_DVC_YAML, f"{path}: in a stage's output folder, but no stage reads it"


@pytest.mark.parametrize("path", paths.INPUTS)
def test_pipeline_inputs_are_read_by_a_stage_and_written_by_none(path):
    assert path in read(), f"{path}: no stage in dvc.yaml has it among its deps"
    assert not within(path, written()), f"{path}: a stage writes it, so it is an output"


@pytest.mark.parametrize("path", paths.OPERATIONS)
def test_what_the_commands_write_is_no_stage_output(path):
    assert not within(path, written()), f"{path}: a stage writes it, so `dvc repro` would take it over"
    assert path not in read(), f"{path}: a stage reads it, so it is a pipeline input"


def test_the_gate_reads_the_splits_and_the_model_it_judges():
    gate = {resolved(entry) for entry in PIPELINE["stages"]["gate"]["deps"]}
    assert {paths.JUDGED, paths.CHAMPION, paths.TEST, paths.TRAIN, paths.VALIDATION} <= gate
    assert {resolved(entry) for entry in PIPELINE["stages"]["gate"]["outs"]} == {
        paths.GATE_DECISION,
        paths.GATE_DECISION_MD,
    }
