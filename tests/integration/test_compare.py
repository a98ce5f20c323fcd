"""`reprotab compare` for real: the README recipe (queue two samplers, run them, compare) in a
reproduced copy of the project. Its pure parts: tests/unit/tracking/test_compare.py."""

import json
import sys

import pytest

from tests.helpers import DVC, sh

pytestmark = pytest.mark.integration

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Trimmed from a real `dvc exp show --json` (dvc 3) after `dvc exp run --queue -S sampler=none,random_over`
# and `dvc exp run --run-all` in a copy made by tests.helpers.make_repo: the workspace, the baseline
# commit (its metrics committed from a run on other data), and two experiments, newest first.
SHOWN = [
    {
        "rev": "workspace",
        "name": None,
        "data": {
            "rev": "workspace",
            "timestamp": None,
            "params": {"params.yaml": {"data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}}},
            "metrics": {
                "reports/tune/metrics.json": {"data": {"trials": 0}},
                "reports/train/metrics.json": {
                    "data": {"sampler_used": "none", "training_rows": 18000, "training_rows_resampled": 18000}
                },
                "reports/evaluate/metrics.json": {
                    "data": {
                        "validation": {"roc_auc": 0.858748, "pr_auc": 0.362596, "log_loss": 0.19},
                        "test": {"roc_auc": 0.861, "pr_auc": 0.37, "f1": 0.03, "log_loss": 0.18},
                    }
                },
            },
            "deps": {},
            "outs": {},
            "meta": {},
        },
        "error": None,
        "experiments": None,
    },
    {
        "rev": "5e83597f732f9171785e801cf4739c4989e2ed10",
        "name": "main",
        "data": {
            "rev": "5e83597f732f9171785e801cf4739c4989e2ed10",
            "timestamp": "2026-11-23T03:12:37",
            "params": {"params.yaml": {"data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}}},
            "metrics": {
                "reports/train/metrics.json": {"data": {"sampler_used": "none"}},
                "reports/evaluate/metrics.json": {
                    "data": {
                        "validation": {"roc_auc": 0.858748},
                        "test": {"roc_auc": 0.861, "pr_auc": 0.37, "f1": 0.03, "log_loss": 0.18},
                    }
                },
            },
            "deps": {},
            "outs": {},
            "meta": {},
        },
        "error": None,
        "experiments": [
            {
                "revs": [
                    {
                        "rev": "2cc09824bbc100a152e6505af63daea0cf9d7f89",
                        "name": "paced-tire",
                        "data": {
                            "rev": "2cc09824bbc100a152e6505af63daea0cf9d7f89",
                            "timestamp": "2026-11-23T03:12:59",
                            "params": {
                                "params.yaml": {
                                    "data": {"task": "classification", "sampler": "random_over", "metric": "roc_auc"}
                                }
                            },
                            "metrics": {
                                "reports/train/metrics.json": {
                                    "data": {"sampler_used": "random_over", "training_rows_resampled": 2790}
                                },
                                "reports/evaluate/metrics.json": {
                                    "data": {
                                        "validation": {"roc_auc": 0.82},
                                        "test": {"roc_auc": 0.850429, "pr_auc": 0.318926, "f1": 0.32, "log_loss": 0.24},
                                    }
                                },
                            },
                            "deps": {},
                            "outs": {},
                            "meta": {},
                        },
                        "error": None,
                        "experiments": None,
                    }
                ],
                "executor": {"state": "success", "name": "dvc-task", "local": {"returncode": 0}},
                "name": "paced-tire",
            },
            {
                "revs": [
                    {
                        "rev": "3a02c6fb39e1b3d4c0a5f5ad2cf1a6a1f0c0e2b1",
                        "name": "elfin-smut",
                        "data": {
                            "rev": "3a02c6fb39e1b3d4c0a5f5ad2cf1a6a1f0c0e2b1",
                            "timestamp": "2026-11-23T03:12:43",
                            "params": {
                                "params.yaml": {
                                    "data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}
                                }
                            },
                            "metrics": {
                                "reports/train/metrics.json": {"data": {"sampler_used": "none"}},
                                "reports/evaluate/metrics.json": {
                                    "data": {
                                        "validation": {"roc_auc": 0.811306},
                                        "test": {"roc_auc": 0.829063, "pr_auc": 0.326809, "f1": 0.0, "log_loss": 0.21},
                                    }
                                },
                            },
                            "deps": {},
                            "outs": {},
                            "meta": {},
                        },
                        "error": None,
                        "experiments": None,
                    }
                ],
                "executor": {"state": "success", "name": "dvc-task", "local": {"returncode": 0}},
                "name": "elfin-smut",
            },
        ],
    },
]


def experiment(
    name: str, timestamp: str, params: dict, test: dict | None, used: str | None = None, family: str | None = None
) -> dict:
    """One experiment entry of `dvc exp show --json` (as under a commit's "experiments")."""
    metrics = {} if test is None else {"reports/evaluate/metrics.json": {"data": {"validation": {}, "test": test}}}
    if used or family:
        metrics["reports/train/metrics.json"] = {"data": {"sampler_used": used, "model_used": family}}
    data = {"rev": f"{name}-rev", "timestamp": timestamp, "params": {"params.yaml": {"data": params}}}
    return {
        "revs": [{"rev": f"{name}-rev", "name": name, "data": {**data, "metrics": metrics}, "error": None}],
        "executor": None,
        "name": name,
    }


# experiment_rows


# rank


# markdown, plot, the default metric


# the README recipe, for real


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
