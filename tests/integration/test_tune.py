"""The tune stage for real: a `dvc exp run -S tuner=random -S model=auto`, and two workers sharing one study."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from reprotab.params.sections import AUDIT_ENV
from tests.helpers import DVC, sh, tool_env

pytestmark = pytest.mark.integration


def test_exp_run_with_model_auto_tunes_and_train_fits_the_chosen_family(reproduced):
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro"], repo)
    audit = repo / "tune-audit.jsonl"
    settings = ["tuner=random", "model=auto", "tune.n_trials=5", "tune.cv_folds=2", "tune.cv_repeats=1"]
    result = sh(
        [DVC, "exp", "run", *(arg for setting in settings for arg in ("-S", setting)), "--name", "rnd"],
        repo,
        env={AUDIT_ENV: str(audit)},
    )
    reads = {row["stage"]: row["read"] for row in map(json.loads, audit.read_text().splitlines())}
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["tune"]["params"]
    assert reads["tune"] == sorted(declared)
    assert "Running stage 'tune'" in result.stdout
    assert "trial 5 of 5" in result.stderr
    best = json.loads((repo / "models/best_params.json").read_text())
    assert best["searched"] and best["tuner"] == "random" and best["trials"]["complete"] == 5
    families = ["random_forest", "xgboost", "lightgbm", "catboost", "linear"]
    assert best["searched_models"] == families and best["model"] in families
    assert all(best["by_model"][family]["complete"] >= 1 for family in families)  # each shipped point tried
    card = json.loads((repo / "models/model.json").read_text())
    assert card["model"] == best["model"] == card["training"]["model_used"]  # the family the search chose
    assert {k: card["hyperparameters"][k] for k in best["params"]} == best["params"]
    assert f"{best['model']} classification fitted on" in result.stderr
    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    exps = {e["name"]: e for c in shown for e in (c.get("experiments") or [])}
    tune_metrics = exps["rnd"]["revs"][0]["data"]["metrics"]["reports/tune/metrics.json"]["data"]
    assert tune_metrics["best_score"] == best["best_score"] and tune_metrics["trials"] == 5
    assert tune_metrics["by_model"] == {f: best["by_model"][f]["best_score"] for f in families}
    assert (repo / "reports/tune/plots/images/history.png").stat().st_size > 0
    trials = (repo / "reports/tune/trials.csv").read_text()
    header = trials.splitlines()[0]
    assert trials.count("\n") == 6 and "params_model" in header and "system_attrs" not in header  # header + 5 trials
    sh(["git", "checkout", "params.yaml"], repo)


def test_two_workers_share_one_study(reproduced):
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro", "prepare"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tuner"] = "optuna"
    params["tune"].update(n_trials=8, cv_folds=2, cv_repeats=1, pruning=False)
    # trials slow enough (~0.5 s) that one worker cannot finish the study before the other joins
    params["model"] = "random_forest"
    params["hyperparameters"]["random_forest"].update(n_estimators=200, n_jobs=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    journal = repo / "models/workers.journal"
    command = [sys.executable, "-m", "stages.tune", "--worker", "--study", str(journal)]
    workers = [
        subprocess.Popen(command, cwd=repo, env=tool_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    storage = JournalStorage(JournalFileBackend(str(journal)))
    [summary] = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert 8 <= len(finished) <= 9  # each worker stops once the study holds 8; one may be mid-trial
    assert len({t.user_attrs["worker"] for t in finished}) == 2
    assert len({t.number for t in trials}) == len(trials)
    sh(["git", "checkout", "params.yaml"], repo)
