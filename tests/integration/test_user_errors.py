"""Bad input and odd situations around the commands: one message in the project's grammar and
exit 2 (no traceback), nothing written; and logs that keep every run's lines."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

import pytest

from reprotab.runner import stage_main
from tests.helpers import ROOT, tool_env

pytestmark = pytest.mark.integration


def reprotab(*args: str, cwd, **kwargs) -> subprocess.CompletedProcess:
    """`reprotab <args>` as a user runs it (python -m reprotab), from this checkout."""
    return subprocess.run(
        [sys.executable, "-m", "reprotab", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=tool_env({"PYTHONPATH": str(ROOT)}),
        **kwargs,
    )


def assert_one_message(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert re.search(pattern, result.stderr), result.stderr


@pytest.fixture
def root_handlers():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in saved:
            handler.close()
    root.handlers[:], root.level = saved, level


def test_a_command_log_keeps_every_run_with_dates(tmp_path, monkeypatch, root_handlers):
    monkeypatch.chdir(tmp_path)

    @stage_main("demo", in_pipeline=False)
    def main(argv=None):
        if argv == ["--help"]:
            raise SystemExit(0)
        logging.getLogger("reprotab.demo").info("run %s", argv[0])

    main(["first"])
    with pytest.raises(SystemExit):
        main(["--help"])  # a later `--help` must not wipe the earlier run's lines
    main(["second"])
    lines = (tmp_path / "reports/logs/demo.log").read_text().splitlines()
    assert [line.split(": ", 1)[1] for line in lines if "reprotab.demo:" in line] == ["run first", "run second"]
    assert all(re.match(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", line) for line in lines), lines


@pytest.mark.parametrize("args", [["--help"], ["registry", "-C", "{repo}", "show", "--json"]], ids=["help", "show"])
def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path, args):
    subprocess.run(["git", "init", "-q", str(tmp_path / "repo")], check=True)
    command = [sys.executable, "-m", "reprotab", *(a.replace("{repo}", str(tmp_path / "repo")) for a in args)]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=tool_env({"PYTHONPATH": str(ROOT)}),
    )
    process.stdout.close()  # `| head` that has read enough: closed before the command writes
    stderr = process.stderr.read().decode()
    assert process.wait() == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr


@pytest.mark.parametrize(
    ("folder", "message"),
    [("missing", r"-C: folder not found\. Got '.*missing'"), ("plain", r"-C: is not in a git repository \(.*\)\. Got")],
)
def test_registry_outside_a_git_repository_is_one_message(tmp_path, folder, message):
    (tmp_path / "plain").mkdir()
    assert_one_message(reprotab("registry", "-C", str(tmp_path / folder), "show", cwd=tmp_path), message)


def test_the_model_card_is_the_same_on_any_checkout(tmp_path, monkeypatch):
    """The card names what made the model, not the commit checked out: the same training gives the
    same card outside git, on a clean commit and in an edited tree (so dvc.lock reproduces)."""
    import pandas as pd

    from reprotab.model.schema import Schema
    from reprotab.train.fit import metadata
    from reprotab.tune.best import BestParams

    def card() -> dict:
        schema = Schema(task="regression", target="y", numeric=("x",), categorical=())
        tuning = BestParams.from_dict({"tuner": "none"})
        features = pd.DataFrame({"x": [1.0], "y": [2.0]})
        return metadata(model="random_forest", schema=schema, hyperparameters={}, features=features, tuning=tuning)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, env=tool_env(), check=True, capture_output=True, text=True
        ).stdout

    monkeypatch.chdir(tmp_path)
    outside = card()
    assert not any(key.startswith("git") for key in outside)
    git("init", "-q")
    (tmp_path / "params.yaml").write_text("a: 1\n")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    assert card() == outside
    (tmp_path / "params.yaml").write_text("a: 2\n")  # edited, not committed
    assert card() == outside


# What the documented commands write beside the pipeline (reprotab predict, compare, query, demo-data
# --out data/incoming/...): the docs' `git add -A` must not commit them. The .dvc files stay committable.
WRITTEN_BY_COMMANDS = (
    "reports/scored.parquet",
    "reports/scored.parquet.errors.csv",
    "reports/scored.csv",
    "reports/compare/sampler.md",
    "reports/compare/sampler.png",
    "labeling/queue.csv",
    "labeling/queue.json",
    "data/incoming/2026-11.parquet",
    "data/incoming/batch.parquet",
    "reports/logs/predict.log",
)
VERSIONED = ("data/incoming/2026-11.parquet.dvc", "data/raw/churn.parquet", "reports/monitor/2026-11/drift.md")


@pytest.mark.parametrize("path", WRITTEN_BY_COMMANDS + VERSIONED)
def test_command_outputs_are_git_ignored_and_versioned_files_are_not(path):
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0
    assert ignored is (path in WRITTEN_BY_COMMANDS), path
