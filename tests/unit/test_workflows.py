"""The GitHub workflows: valid against GitHub's workflow schema (checked offline with
check-jsonschema's bundled copy, which also rejects a broken file), and calling the commands the
README and the docs document and the review module accepts."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reprotab.retrain.month import parser as retrain_parser
from reprotab.tracking.review import parser as review_parser
from tests.helpers import ROOT

WORKFLOWS = ROOT / ".github/workflows"
CHECK_JSONSCHEMA = str(Path(sys.executable).parent / "check-jsonschema")


def validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
    )


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def run_lines(workflow: dict) -> list[str]:
    return [line.strip() for step in steps(workflow) for line in step.get("run", "").splitlines() if line.strip()]


def test_both_workflows_are_valid():
    result = validate(WORKFLOWS / "tests.yml", WORKFLOWS / "pr-review.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "pattern", "replacement", "error"),
    [
        ("tests.yml", r"\n\s+runs-on: ubuntu-latest", "", "'runs-on' is a required property"),
        ("pr-review.yml", r"\n(\s+)steps:", r"\n\1step:", "'step' was unexpected"),
        ("pr-review.yml", r"pull-requests: write", "pull-requests: sometimes", "'sometimes' is not one of"),
    ],
)
def test_a_broken_copy_fails_validation(tmp_path, name, pattern, replacement, error):
    text = (WORKFLOWS / name).read_text()
    broken, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1
    (tmp_path / name).write_text(broken)
    result = validate(tmp_path / name)
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


def setup_commands(page: str) -> set[str]:
    """The commands of the first code block of a page's set-up section."""
    block = re.search(r"## Set-up.*?```bash\n(.*?)```", (ROOT / page).read_text(), re.S).group(1)
    return {line.split("#")[0].strip() for line in block.splitlines() if line.strip()}


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_readme_and_getting_started_document_the_commands_the_workflows_run(page):
    assert setup_commands(page) == {"python3 run.py pipeline", "python3 run.py test"}


def test_tests_workflow_runs_the_readme_test_command_on_push_and_pull_request():
    workflow = load("tests.yml")
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert "python3 run.py test" in run_lines(workflow)
    assert (ROOT / ".ci/run").read_text().rstrip().endswith("python3 run.py test")


def test_review_workflow_reproduces_reviews_and_comments():
    workflow = load("pr-review.yml")
    assert set(workflow["on"]) == {"pull_request"}
    assert workflow["permissions"]["pull-requests"] == "write"
    by_use = {step["uses"].split("@")[0]: step for step in steps(workflow) if "uses" in step}
    assert by_use["actions/checkout"]["with"]["fetch-depth"] == 0
    assert str(by_use["actions/setup-python"]["with"]["python-version"]) == "3.11"
    assert by_use["actions/upload-artifact"]["with"]["path"].rstrip("/") == "reports/review"

    lines = run_lines(workflow)
    assert lines.index("python3 run.py setup") < lines.index("python3 run.py pipeline")
    pull = next(step for step in steps(workflow) if "dvc pull" in step.get("run", ""))
    assert "--run-cache" in pull["run"] and pull["continue-on-error"] is True
    assert pull["if"] == "env.AWS_ACCESS_KEY_ID != ''"

    review = next(line for line in lines if "reprotab review" in line)
    assert lines.index(review) > lines.index("python3 run.py pipeline")
    assert shlex.split(review)[:2] == [".venv/bin/reprotab", "review"]  # the command run.py setup installs
    args = review_parser().parse_args(shlex.split(review)[2:])  # the flags exist and parse
    assert args.base == "origin/$BASE_REF" and args.head is None and args.out == "reports/review"
    comment = next(step for step in steps(workflow) if "gh pr comment" in step.get("run", ""))
    # its own comment is found by the marker on comment.md's first line, edited, or else created
    assert "head -n 1 reports/review/comment.md" in comment["run"] and "startswith" in comment["run"]
    assert "--method PATCH" in comment["run"] and "body=@reports/review/comment.md" in comment["run"]
    assert "GH_TOKEN" in comment["env"]


def test_retrain_workflow_is_valid_and_a_broken_copy_is_not(tmp_path):
    result = validate(WORKFLOWS / "retrain.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    broken = (WORKFLOWS / "retrain.yml").read_text().replace("contents: write", "contents: always", 1)
    (tmp_path / "retrain.yml").write_text(broken)
    result = validate(tmp_path / "retrain.yml")
    assert result.returncode != 0 and "'always' is not one of" in result.stdout + result.stderr


def test_retrain_workflow_runs_monthly_retrains_without_promoting_and_opens_a_pull_request():
    workflow = load("retrain.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    cron = workflow["on"]["schedule"][0]["cron"].split()
    assert len(cron) == 5 and cron[2] != "*" and cron[3:] == ["*", "*"]  # one day of every month
    assert "batch" in workflow["on"]["workflow_dispatch"]["inputs"]
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    (job,) = workflow["jobs"].values()
    assert "fork" in job["if"]  # forks do not retrain

    lines = run_lines(workflow)
    pull = next(step for step in steps(workflow) if "dvc pull" in step.get("run", ""))
    assert pull["continue-on-error"] is True and pull["if"] == "env.AWS_ACCESS_KEY_ID != ''"
    retrain = next(line for line in lines if "reprotab retrain" in line)
    review = next(line for line in lines if "reprotab review" in line)
    create = next(line for line in lines if line.startswith("gh pr create"))
    setup, pull_line = "python3 run.py setup", ".venv/bin/dvc pull --run-cache"
    order = [lines.index(x) for x in (setup, pull_line, retrain, review, create)]
    assert order == sorted(order)
    assert shlex.split(retrain)[:2] == [".venv/bin/reprotab", "retrain"]
    args = retrain_parser().parse_args(shlex.split(retrain)[2:])
    assert args.batch == "$BATCH" and not args.promote  # promotion happens on merge
    assert review_parser().parse_args(shlex.split(review)[2:]).base == "origin/main"
    assert "data/incoming/" in "\n".join(lines)  # the newest incoming batch by default
    opener = next(step for step in steps(workflow) if "gh pr create" in step.get("run", ""))
    assert "GH_TOKEN" in opener["env"]
    for page in ("reports/retrain/", "reports/gate/decision.md", "reports/review/report.md", "drift.md"):
        assert page in opener["run"]
