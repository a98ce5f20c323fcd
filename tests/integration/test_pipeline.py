"""The real thing: `dvc repro` and `dvc exp run` in a temporary git + DVC repository."""

import json
import re

import pytest
import yaml

from reprotab.params.sections import AUDIT_ENV
from tests.helpers import DVC, sh

pytestmark = pytest.mark.integration


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


def test_repro_writes_sane_metrics_and_every_declared_plot(repo):
    audit = repo / "audit.jsonl"
    # a clone carries validate's output and lock entry (cache: false), so validate is up to date
    # there; without its output it must run first, as after any params edit
    (repo / "reports/validate/params.json").unlink()
    result = sh([DVC, "repro"], repo, env={AUDIT_ENV: str(audit)})
    ran = ran_stages(result.stdout)  # profile (a report on the raw table) is independent of the chain
    chain = ["validate", "prepare", "tune", "train", "reference", "evaluate", "gate"]
    assert [s for s in ran if s != "profile"] == chain and "profile" in ran
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
    # needs only two of them; tests/integration/test_tune.py audits a real search)
    reads = {row["stage"]: row["read"] for row in map(json.loads, audit.read_text().splitlines())}
    declared = {name: sorted(stage["params"]) for name, stage in pipeline["stages"].items() if stage.get("params")}
    assert reads == {**declared, "tune": ["model", "tuner"]}


def test_second_repro_runs_nothing(repo):
    sh([DVC, "repro"], repo)
    result = sh([DVC, "repro"], repo)
    assert ran_stages(result.stdout) == []
    assert "up to date" in result.stdout


def test_a_forced_rerun_reproduces_every_output_byte_for_byte(repo):
    """`dvc repro --force` on a committed run changes nothing git or DVC tracks: each output (the
    pickled model, the card, the profile page, every report) comes out as dvc.lock records it."""
    sh([DVC, "repro"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "a run to reproduce"], repo)
    result = sh([DVC, "repro", "--force"], repo)
    assert "profile" in ran_stages(result.stdout) and "train" in ran_stages(result.stdout)
    assert sh(["git", "status", "--porcelain"], repo).stdout == ""
    assert "up to date" in sh([DVC, "status"], repo).stdout


def test_exp_run_with_changed_model_reruns_only_dependent_stages(repo):
    sh([DVC, "repro"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "baseline run"], repo)  # may be committed already
    result = sh([DVC, "exp", "run", "-S", "model=xgboost", "--name", "try-xgboost"], repo)
    # validate checks every params.yaml edit; its output does not change, so prepare stays cached
    assert ran_stages(result.stdout) == ["validate", "tune", "train", "reference", "evaluate", "gate"]
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
    # tune resamples inside its CV folds, train before fitting; prepare is untouched
    assert ran_stages(result.stdout) == ["validate", "tune", "train", "reference", "evaluate", "gate"]
    assert "sampler adasyn → adasyn" in result.stderr
    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    experiments = {exp["name"]: exp for commit in shown for exp in (commit.get("experiments") or [])}
    data = experiments["try-adasyn"]["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["sampler"] == "adasyn"
    balancing = data["metrics"]["reports/train/metrics.json"]["data"]
    assert balancing["sampler_used"] == "adasyn" and balancing["training_rows_resampled"] > balancing["training_rows"]


BAD_EDITS = {
    "misspelt value": (
        r"(?m)^model: \w+",
        "model: xgbost",
        "model: must be one of random_forest, xgboost, lightgbm, catboost, linear, auto, ensemble. "
        "Got 'xgbost'. Did you mean 'xgboost'?",
    ),
    "unknown top-level key": (r"(?m)^model: (\w+)", r"modle: \1", "modle: is not a known key"),
    "bad train setting": (
        r"(?m)^  threshold: auto",
        "  threshold: 1.5",
        "train.threshold: must be auto, null or a number",
    ),
    "rejected hyperparameter value": (
        r"(?m)^    n_estimators: 500\n    learning_rate: 0.08\n    depth",
        "    n_estimators: -3\n    learning_rate: 0.08\n    depth",
        "hyperparameters.catboost.n_estimators: must be an int in the range [1, inf). Got -3.",
    ),
}


@pytest.mark.parametrize("edit", BAD_EDITS)
def test_bad_params_stop_repro_before_any_stage_clears_its_outputs(repo, edit):
    """validate runs first on every params.yaml edit: the model and reports stay as they were."""
    sh(["git", "checkout", "--", "params.yaml"], repo)  # an earlier `dvc exp run` applied its params here
    sh([DVC, "repro"], repo)
    model = (repo / "models/model.zip").read_bytes()
    params = repo / "params.yaml"
    good = params.read_text()
    pattern, replacement, message = BAD_EDITS[edit]
    bad = re.sub(pattern, replacement, good, count=1)
    assert bad != good
    params.write_text(bad)
    try:
        result = sh([DVC, "repro"], repo, check=False)
        assert result.returncode != 0
        assert message in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
        assert ran_stages(result.stdout) == ["validate"]
        assert (repo / "models/model.zip").read_bytes() == model
    finally:
        params.write_text(good)
    sh([DVC, "checkout"], repo)
    assert "up to date" in sh([DVC, "status"], repo).stdout


def test_editing_a_module_marks_exactly_the_stages_that_import_it(repo):
    """Code is a dependency: reprotab/model/served.py is imported by train, reference, evaluate and
    gate, not by prepare."""
    sh([DVC, "repro"], repo)
    served = repo / "reprotab/model/served.py"
    original = served.read_text()
    served.write_text(original + "\n# an edit\n")
    try:
        status = json.loads(sh([DVC, "status", "--json"], repo).stdout)
    finally:
        served.write_text(original)
    assert set(status) == {"train", "reference", "evaluate", "gate"}


def test_in_process_run_gives_the_pipelines_metrics(repo):
    """reprotab.pipeline.run on the same data and params scores exactly what dvc repro writes."""
    import pandas as pd

    from reprotab.params.loader import load_params
    from reprotab.pipeline import run

    sh([DVC, "repro"], repo)
    params = load_params(repo / "params.yaml")
    frame = pd.read_parquet(repo / params.data.path)
    result = run(frame, params)
    written = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    for name, value in result.metrics["test"].items():
        assert value == pytest.approx(written["test"][name], abs=1e-6), name
