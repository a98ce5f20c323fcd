"""The real thing: `dvc repro` and `dvc exp run` in a temporary git + DVC repository."""

import json
import re

import pytest
import yaml

from reprotab.params import AUDIT_ENV
from tests.conftest import DVC, sh

pytestmark = pytest.mark.integration


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_writes_sane_metrics_and_every_declared_plot(repo):
    audit = repo / "audit.jsonl"
    result = sh([DVC, "repro"], repo, env={AUDIT_ENV: str(audit)})
    assert ran_stages(result.stdout) == ["prepare", "featurize", "tune", "train", "evaluate"]
    metrics = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert 0.7 < metrics["test"]["roc_auc"] <= 1.0
    assert 0.0 <= metrics["test"]["f1"] <= 1.0
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    for plot in pipeline["plots"]:  # a path, or a named plot whose y maps its data files
        name, props = next(iter(plot.items())) if isinstance(plot, dict) else (plot, None)
        for source in props["y"] if props and isinstance(props.get("y"), dict) else [name]:
            assert (repo / source).exists(), source
    rendered = json.loads(sh([DVC, "plots", "show", "--json"], repo).stdout)
    assert "errors" not in json.dumps(rendered).lower() or not rendered.get("errors")
    # each stage read exactly the params keys it declares in dvc.yaml (tune with tuner: none
    # needs only two of them; tests/test_tune.py audits a real search)
    reads = {row["stage"]: row["read"] for row in map(json.loads, audit.read_text().splitlines())}
    declared = {name: sorted(stage["params"]) for name, stage in pipeline["stages"].items()}
    assert reads == {**declared, "tune": ["model", "tuner"]}


def test_second_repro_runs_nothing(repo):
    sh([DVC, "repro"], repo)
    result = sh([DVC, "repro"], repo)
    assert ran_stages(result.stdout) == []
    assert "up to date" in result.stdout


def test_exp_run_with_changed_model_reruns_only_dependent_stages(repo):
    sh([DVC, "repro"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "baseline run"], repo)
    result = sh([DVC, "exp", "run", "-S", "model=xgboost", "--name", "try-xgboost"], repo)
    assert ran_stages(result.stdout) == ["tune", "train", "evaluate"]
    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    experiments = [exp for commit in shown for exp in (commit.get("experiments") or [])]
    names = {exp["name"]: exp for exp in experiments}
    assert "try-xgboost" in names
    revision = names["try-xgboost"]["revs"][0]["data"]
    assert revision["params"]["params.yaml"]["data"]["model"] == "xgboost"
    assert revision["metrics"]["reports/evaluate/metrics.json"]["data"]["test"]["roc_auc"] > 0.7


def test_exp_run_with_a_sampler_reruns_only_the_stages_that_resample(repo):
    sh([DVC, "repro"], repo)
    result = sh([DVC, "exp", "run", "-S", "sampler=adasyn", "--name", "try-adasyn"], repo)
    # tune resamples inside its CV folds, train before fitting; prepare and featurize are untouched
    assert ran_stages(result.stdout) == ["tune", "train", "evaluate"]
    assert "sampler adasyn → adasyn" in result.stderr
    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    experiments = {exp["name"]: exp for commit in shown for exp in (commit.get("experiments") or [])}
    data = experiments["try-adasyn"]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["sampler"] == "adasyn"
    balancing = data["metrics"]["reports/train/metrics.json"]["data"]
    assert balancing["sampler_used"] == "adasyn" and balancing["training_rows_resampled"] > balancing["training_rows"]


def test_bad_params_fail_cleanly_and_leave_the_cache_intact(repo):
    sh([DVC, "repro"], repo)
    params = repo / "params.yaml"
    good = params.read_text()
    params.write_text(re.sub(r"(?m)^model: \w+", "model: xgbost", good))
    result = sh([DVC, "repro"], repo, check=False)
    assert result.returncode != 0
    assert "model: must be one of random_forest, xgboost, lightgbm. Got 'xgbost'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    params.write_text(good)
    sh([DVC, "checkout"], repo)
    assert "up to date" in sh([DVC, "status"], repo).stdout
