"""Tracking mirrors: MLflow (a temporary SQLite store) and Comet (offline archives), fed from a
real git + DVC repository through dvc.api."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import reproduced_repo, sh

pytestmark = pytest.mark.integration


# --- integration: one repository for the module ---------------------------------------------


@pytest.fixture(scope="module")
def mirrored_repo(tmp_path_factory) -> Path:
    """A small project: a first commit without metrics, then `dvc repro` committed."""
    path = reproduced_repo(tmp_path_factory, "mirrors")
    raw = yaml.safe_load((path / "params.yaml").read_text())
    raw["model"] = "lightgbm"  # the tests below read its settings back
    raw["hyperparameters"]["lightgbm"]["n_estimators"] = 10
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sh(["git", "rm", "-rq", "--cached", "reports"], path)
    sh(["git", "commit", "-qam", "no reports yet"], path)
    sh(["git", "tag", "bare"], path)
    sh(["dvc", "repro", "-q"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-qm", "pipeline run"], path)
    return path


def mirror(repo: Path, *args: str, env: dict | None = None):
    return sh([sys.executable, "-m", "reprotab", "mirror", *args], repo, check=False, env=env)


def test_mlflow_mirror_logs_a_run_with_a_model_that_predicts_like_ours(mirrored_repo, tmp_path, monkeypatch):
    import mlflow

    from reprotab.model.served import load

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # models:/ URIs resolve through the default store
    result = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri)
    assert result.returncode == 0, result.stderr
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("reprotab")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    sha = sh(["git", "rev-parse", "HEAD"], mirrored_repo).stdout.strip()
    lock = yaml.safe_load((mirrored_repo / "dvc.lock").read_text())
    raw_md5 = next(d["md5"] for d in lock["stages"]["prepare"]["deps"] if d["path"] == "data/raw/churn.parquet")
    assert run.data.tags | {"git_sha": sha, "dvc_experiment": "workspace", "data_hash": raw_md5} == run.data.tags
    assert run.info.run_name == "workspace"
    assert run.data.params["model"] == "lightgbm"
    assert run.data.params["hyperparameters/lightgbm/n_estimators"] == "10"
    evaluate = json.loads((mirrored_repo / "reports/evaluate/metrics.json").read_text())
    assert run.data.metrics["test/roc_auc"] == pytest.approx(evaluate["test"]["roc_auc"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reports/evaluate/figures")}
    assert "reports/evaluate/figures/roc.png" in artifacts

    rows = pd.read_parquet(mirrored_repo / "data/prepared/test.parquet")
    pyfunc = mlflow.pyfunc.load_model(run.data.tags["reprotab.model_uri"])
    ours = load(mirrored_repo / "models/model.zip")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(rows)), ours.predict(rows))
    assert pyfunc.metadata.get_input_schema().input_names() == list(ours.schema.features)

    again = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri)
    assert again.returncode == 0, again.stderr
    assert "updated run workspace" in again.stderr and "0 new params, 0 metrics" in again.stderr
    assert len(client.search_runs([experiment.experiment_id])) == 1
    assert len(mlflow.search_logged_models(experiment_ids=[experiment.experiment_id], output_format="list")) == 1

    champion = mirrored_repo / "models/champion.json"
    champion.write_text(json.dumps({"version": "v1", "commit": sha}))
    try:
        committed = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri, "--rev", "HEAD", "--aliases")
    finally:
        champion.unlink()
    assert committed.returncode == 0, committed.stderr
    runs = {r.data.tags["reprotab.key"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"workspace@{sha}", sha}
    assert client.get_model_version_by_alias("reprotab", "champion").run_id == runs[sha].info.run_id


def test_mlflow_mirror_refuses_bad_input_with_one_message(mirrored_repo, tmp_path):
    unreachable = mirror(mirrored_repo, "mlflow", "--tracking-uri", "http://me:s3cret@127.0.0.1:9")
    assert unreachable.returncode == 2
    assert (
        "--tracking-uri: cannot be reached" in unreachable.stderr and "http://me:***@127.0.0.1:9" in unreachable.stderr
    )
    assert "s3cret" not in unreachable.stderr and "Traceback" not in unreachable.stderr

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    bare = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri, "--rev", "bare")
    assert bare.returncode == 2 and "revision bare: has no metrics to mirror" in bare.stderr
    none = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri, "--all-experiments")
    assert none.returncode == 2 and "found no finished DVC experiment" in none.stderr
    unknown = mirror(mirrored_repo, "mlflow", "--tracking-uri", uri, "--rev", "nope")
    assert unknown.returncode == 2 and "--rev: is not a git revision" in unknown.stderr

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("reprotab")
    assert client.search_runs([experiment.experiment_id]) == []  # nothing half-logged


def test_comet_mirror_writes_an_offline_archive(mirrored_repo, tmp_path):
    out = tmp_path / "comet"
    result = mirror(mirrored_repo, "comet", "--offline-dir", str(out), env={"COMET_API_KEY": ""})
    assert result.returncode == 0, result.stderr
    assert "comet upload" in result.stderr
    (archive,) = out.glob("*.zip")
    with zipfile.ZipFile(archive) as zipped:
        messages = [json.loads(line) for line in zipped.read("messages.json").decode().splitlines() if line]
    params = {
        m["payload"]["param"]["paramName"]: m["payload"]["param"]["paramValue"]
        for m in messages
        if "param" in m["payload"]
    }
    metrics = {
        m["payload"]["metric"]["metricName"]: m["payload"]["metric"]["metricValue"]
        for m in messages
        if "metric" in m["payload"]
    }
    others = {m["payload"]["key"]: m["payload"]["value"] for m in messages if m["type"] == "log_other"}
    evaluate = json.loads((mirrored_repo / "reports/evaluate/metrics.json").read_text())
    assert params["model"] == "lightgbm"
    assert float(metrics["test/roc_auc"]) == pytest.approx(evaluate["test"]["roc_auc"])
    sha = sh(["git", "rev-parse", "HEAD"], mirrored_repo).stdout.strip()
    assert others["git_sha"] == sha and others["dvc_experiment"] == "workspace"
