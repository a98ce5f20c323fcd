"""CatBoost, the linear family and the ensemble for real: `dvc exp run -S model=...` in a repository,
then the gate's decision, the registry, `reprotab predict` and `reprotab serve` on the file it wrote."""

from __future__ import annotations

import json
import sys

import httpx
import pandas as pd
import pytest

from reprotab.data.tables import file_md5
from reprotab.registry import versions as registry
from tests.helpers import DVC, reproduced_repo, request_rows, serve_command, server, sh
from tests.integration.test_registry import cli

pytestmark = pytest.mark.integration
SEARCH = ["tuner=random", "tune.n_trials=6", "tune.cv_folds=2", "tune.cv_repeats=1"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    repo = reproduced_repo(tmp_path_factory, "families")
    sh(["git", "config", "user.name", "tests"], repo)  # tags written in-process need an identity
    sh(["git", "config", "user.email", "tests@localhost"], repo)
    return repo


@pytest.mark.parametrize(
    ("model", "settings"),
    [
        ("catboost", []),
        ("linear", []),
        ("ensemble", [*SEARCH, "tune.confirm=false"]),  # the blend ships whatever the check would say
    ],
)
def test_a_family_runs_from_exp_run_through_the_gate_the_registry_predict_and_serve(project, model, settings):
    repo = project
    flags = [arg for setting in [f"model={model}", *settings] for arg in ("-S", setting)]
    sh([DVC, "exp", "run", *flags, "--name", f"try-{model}"], repo)

    card = json.loads((repo / "models/model.json").read_text())
    assert card["model"] == model == card["training"]["model_used"]
    if model == "ensemble":
        members = card["hyperparameters"]["members"]
        assert sum(m["weight"] for m in members) == pytest.approx(1.0)
        assert [m["model"] for m in card["training"]["ensemble"]["members"]] == [m["model"] for m in members]
        best = json.loads((repo / "models/best_params.json").read_text())
        assert best["ensemble"]["out_of_fold_score"] >= best["ensemble"]["best_single_out_of_fold_score"]
    test = json.loads((repo / "reports/evaluate/metrics.json").read_text())["test"]
    assert test["roc_auc"] > 0.75
    assert "promote" in json.loads((repo / "reports/gate/decision.json").read_text())

    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", f"a {model} model"], repo)
    status, said = cli(repo, "register")
    assert status == 0, said
    version = said.split()[1]
    loaded, info = registry.load(version=version, repo=str(repo))
    assert loaded.family == model and info["version"] == version

    scored = repo / f"scored-{model}.csv"
    sh([sys.executable, "-m", "reprotab", "predict", "--version", version, "--input", "data/raw/churn.parquet",
        "--output", str(scored)], repo)  # fmt: skip
    rows = pd.read_csv(scored)
    assert len(rows) == len(pd.read_parquet(repo / "data/raw/churn.parquet"))
    assert rows.filter(like="proba").notna().all().all()

    with server(serve_command(repo / "models/model.zip"), cwd=repo) as url:
        answer = httpx.post(f"{url}/predict", json={"rows": request_rows(3)}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 3
        assert httpx.get(f"{url}/metadata", timeout=30).json()["model"] == model


def test_refit_all_ships_a_model_of_every_row_while_the_gate_judges_the_train_validation_one(project):
    repo = project
    sh([DVC, "exp", "run", "-S", "model=lightgbm", "-S", "tuner=none", "-S", "train.refit=all", "--name", "all"], repo)
    shipped, judged = repo / "models/model.zip", repo / "models/judged.zip"
    assert file_md5(shipped) != file_md5(judged)
    card = json.loads((repo / "models/model.json").read_text())
    assert card["trained_on"] == ["train", "validation", "test"] and card["judged"]["judged_by"] == "test"
    assert list(card["judged"]["trained_on_rows"]) == ["train", "validation"]
    rows = card["trained_on_rows"]
    assert card["training_rows"] == rows["train"] + rows["validation"] + rows["test"]
    kept = card["training"]["best_iteration"]
    assert card["training"]["refit"]["n_estimators"] == round(kept * card["training_rows"] / rows["train"])
    assert "train.refit: all" in (repo / "reports/evaluate/summary.md").read_text()
    decision = json.loads((repo / "reports/gate/decision.json").read_text())
    assert decision["challenger_md5"] == file_md5(judged)  # never the model that saw the test rows

    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "refit on every row"], repo)
    digest = file_md5(judged)  # a later gate reads the judged model: registering needs it stored too
    cached = repo / ".dvc/cache/files/md5" / digest[:2] / digest[2:]
    aside = cached.rename(repo / "judged.aside")
    assert cli(repo, "register")[0] == 2
    aside.rename(cached)
    status, said = cli(repo, "register")
    assert status == 0, said
    version = said.split()[1]
    forced = [] if decision["promote"] else ["--force", "--reason", "test of refit all"]
    assert cli(repo, "promote", version, "--stage", "prod", *forced)[0] == 0  # the decision is not stale
    loaded, _ = registry.load(stage="prod", repo=str(repo))
    assert loaded.to_bytes() == shipped.read_bytes()  # prod serves the model of every row
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "champion"], repo)

    sh([DVC, "repro", "-f", "gate"], repo)  # the next gate reads the champion's judged model, not its shipped one
    decision = json.loads((repo / "reports/gate/decision.json").read_text())
    assert decision["champion"]["version"] == version and decision["champion"]["md5"] == file_md5(judged)
    assert "the challenger is the champion's model" in decision["reason"]
