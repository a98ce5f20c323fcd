"""`reprotab compare` for real: the recipe of docs/recipes/samplers.md (queue two samplers, run
them, compare) in a reproduced copy of the project. Its pure parts: tests/unit/tracking/test_compare.py."""

import json
import sys

import pytest

from tests.helpers import DVC, sh

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# and `dvc exp run --run-all` in a copy made by tests.helpers.make_repo: the workspace, the baseline


# the docs' recipe, for real


def test_queued_samplers_are_run_and_ranked(reproduced):
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "exp", "run", "--queue", "-S", "sampler=none,random_over"], repo)
    sh([DVC, "exp", "run", "--run-all"], repo)
    result = sh([sys.executable, "-m", "reprotab", "compare", "--by", "sampler"], repo)
    assert "2 values of sampler compared" in result.stderr

    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    ran = {
        rev["data"]["params"]["params.yaml"]["data"]["sampler"]: rev["data"]["metrics"][
            "reports/evaluate/metrics.json"
        ]["data"]["test"]["roc_auc"]
        for commit in shown
        for exp in commit.get("experiments") or []
        for rev in exp["revs"]
    }
    assert set(ran) == {"none", "random_over"}

    report = (repo / "reports/compare/sampler.md").read_text(encoding="utf-8")
    lines = report.splitlines()
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    table = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[4:6]]
    assert [row["rank"] for row in table] == ["1", "2"]
    assert {row["sampler"] for row in table} == {"none", "random_over"}
    assert [row["sampler_used"] for row in table] == [row["sampler"] for row in table]
    # the experiments' own scores (not the baseline's, committed from the full data), best first
    expected = sorted(ran.items(), key=lambda item: -item[1])
    assert [(row["sampler"], float(row["roc_auc"])) for row in table] == [
        (name, pytest.approx(value, abs=5e-5)) for name, value in expected
    ]
    assert (repo / "reports/compare/sampler.png").read_bytes().startswith(PNG_MAGIC)
