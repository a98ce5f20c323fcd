"""The tune stage for real: a `dvc exp run -S tuner=random`, and two workers sharing one study."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage

from reprotab.params import AUDIT_ENV
from tests.conftest import DVC, sh, tool_env

pytestmark = pytest.mark.integration


def test_exp_run_with_tuner_random_tunes_and_train_fits_the_best_params(reproduced):
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro"], repo)
    audit = repo / "tune-audit.jsonl"
    result = sh(
        [DVC, "exp", "run", "-S", "tuner=random", "-S", "tune.n_trials=3", "-S", "tune.cv_folds=2", "--name", "rnd"],
        repo,
        env={AUDIT_ENV: str(audit)},
    )
    reads = {row["stage"]: row["read"] for row in map(json.loads, audit.read_text().splitlines())}
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["tune"]["params"]
    assert reads["tune"] == sorted(declared)
    assert "Running stage 'tune'" in result.stdout
    assert "trial 3 of 3" in result.stderr
    best = json.loads((repo / "models/best_params.json").read_text())
    assert best["searched"] and best["tuner"] == "random" and best["trials"]["complete"] == 3
    fitted = json.loads((repo / "models/model.json").read_text())["hyperparameters"]
    assert {k: fitted[k] for k in best["params"]} == best["params"]
    shown = json.loads(sh([DVC, "exp", "show", "--json"], repo).stdout)
    exps = {e["name"]: e for c in shown for e in (c.get("experiments") or [])}
    tune_metrics = exps["rnd"]["revs"][0]["data"]["metrics"]["reports/tune/metrics.json"]["data"]
    assert tune_metrics["best_score"] == best["best_score"] and tune_metrics["trials"] == 3
    assert (repo / "reports/tune/plots/images/history.png").stat().st_size > 0
    assert (repo / "reports/tune/trials.csv").read_text().count("\n") == 4  # header + 3 trials
    sh(["git", "checkout", "params.yaml"], repo)


def test_two_workers_share_one_study(reproduced):
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro", "prepare"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tuner"] = "optuna"
    params["tune"].update(n_trials=8, cv_folds=2, pruning=False)
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
