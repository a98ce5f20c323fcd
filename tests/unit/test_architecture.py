"""The library's shape: one served-model format, registries as the one source of names, the
`reprotab` command, and adding a model as one registry entry plus its params block."""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from reprotab.cli import COMMANDS
from reprotab.cli import main as cli_main
from reprotab.data.prepare import infinities_to_missing, prepare_with
from reprotab.errors import UserError
from reprotab.model import served
from reprotab.params.loader import parse_params
from reprotab.params.sections import registry
from reprotab.pipeline import run
from reprotab.train.families import MODELS, ModelSpec
from reprotab.train.sampling import SAMPLERS
from reprotab.tune.tuners import TUNERS
from tests.conftest import LONGEST_FIRST
from tests.helpers import ROOT, base_params


@pytest.fixture(scope="module")
def small_run(churn_small):
    params = parse_params(base_params(hyperparameters={"random_forest": {"n_estimators": 15, "n_jobs": 1}}))
    return run(churn_small, params)


def test_saved_model_round_trips_with_its_format_version(small_run, tmp_path):
    served.save(small_run.model, tmp_path / "model.zip")
    loaded = served.load(tmp_path / "model.zip")
    rows = small_run.splits["test"]
    assert loaded.format_version == served.FORMAT_VERSION
    assert (loaded.predict(rows) == small_run.model.predict(rows)).all()
    assert loaded.decision_threshold == small_run.model.decision_threshold


def test_a_model_of_another_format_version_is_refused(small_run, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:  # a bundle written by a later version of this project
        patch.setattr(served, "FORMAT_VERSION", served.FORMAT_VERSION + 1)
        served.save(small_run.model, tmp_path / "model.zip")
    with pytest.raises(
        UserError,
        match=rf"model: is not a valid model bundle: manifest\.json: has model format {served.FORMAT_VERSION + 1}; "
        rf"this version reads format {served.FORMAT_VERSION}\. .*Upgrade this project to the version that wrote it",
    ):
        served.load(tmp_path / "model.zip")


def test_a_pickled_model_is_refused_unread_with_the_convert_command(small_run, tmp_path):
    """Models up to format 2 were joblib pickles: refused, naming `reprotab model convert`."""
    joblib.dump(small_run.model, tmp_path / "model.joblib")
    with pytest.raises(
        UserError,
        match=r"model: is a pickle from an older version of this project, not a model bundle\. "
        r"Got '.*model\.joblib'\. Convert it once with `reprotab model convert OLD NEW`",
    ):
        served.load(tmp_path / "model.joblib")


def test_a_model_pickled_by_an_old_layout_is_refused_with_a_clear_message(tmp_path):
    """Models from before format versions pickled `stages.estimators.TabularModel`."""
    payload = pickle.dumps(0).replace(b"K\x00", b"cstages.estimators\nTabularModel\n)\x81")
    (tmp_path / "old.joblib").write_bytes(payload)
    with pytest.raises(UserError, match=r"model: is a pickle from an older version of this project.*model convert"):
        served.load(tmp_path / "old.joblib")


def test_a_model_pickled_by_the_flat_layout_is_refused_with_a_clear_message(tmp_path):
    """Format 1 models pickled `reprotab.served.TabularModel`, before the library had sub-packages."""
    payload = pickle.dumps(0).replace(b"K\x00", b"creprotab.served\nTabularModel\n)\x81")
    (tmp_path / "flat.joblib").write_bytes(payload)
    with pytest.raises(UserError, match=r"model: is a pickle from an older version of this project.*model convert"):
        served.load(tmp_path / "flat.joblib")


class _Touch:
    """Unpickling this creates the file: proof that a model file was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_loading_a_model_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    (tmp_path / "evil.joblib").write_bytes(pickle.dumps(_Touch(marker)))
    pickle.loads(pickle.dumps(_Touch(tmp_path / "control")))  # the payload does run when unpickled
    assert (tmp_path / "control").exists()
    with pytest.raises(UserError, match=r"is a pickle from an older version"):
        served.load(tmp_path / "evil.joblib")
    with pytest.raises(UserError, match=r"is a pickle from an older version"):
        served.loads((tmp_path / "evil.joblib").read_bytes())
    assert not marker.exists()


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "is not a valid model bundle: not a readable zip"),
        (b"not a pickle", "is not a valid model bundle: not a readable zip"),
        (_zip({"schema.json": b"{}"}), "is not a valid model bundle: lacks manifest.json"),
        (_zip({"manifest.json": b'{"format": "other"}'}), "is not a valid model bundle: manifest.json: format must be"),
        (pickle.dumps([1, 2]), "is a pickle from an older version"),
    ],
)
def test_corrupt_or_foreign_model_files_are_refused(tmp_path, content, message):
    (tmp_path / "m.zip").write_bytes(content)
    with pytest.raises(UserError, match=re.escape(message)):
        served.load(tmp_path / "m.zip")


def test_threshold_semantics_live_in_the_model(small_run):
    model = small_run.model
    assert model.binary and model.decision_threshold == pytest.approx(model.threshold)
    proba = np.array([[0.7, 0.3], [0.2, 0.8]])
    positive = model.positive_index()
    model_threshold, model.threshold = model.threshold, None
    try:
        assert model.decision_threshold == 0.5
        assert list(model.class_indices(proba[:, ::-1] if positive == 0 else proba)) == [1 - positive, positive]
    finally:
        model.threshold = model_threshold


def test_registry_names_are_what_params_accept():
    assert registry("models") == tuple(MODELS)
    assert registry("model choices") == (*MODELS, "auto", "ensemble")
    assert set(registry("samplers")) == {"auto", *SAMPLERS}
    assert registry("tuners") == ("none", *TUNERS)


def test_params_page_and_params_comments_list_every_registered_name():
    page = (ROOT / "docs/params.md").read_text()  # the strategy-key table of the docs site
    shipped = (ROOT / "params.yaml").read_text()
    keys = (("model", registry("model choices")), ("sampler", registry("samplers")), ("tuner", registry("tuners")))
    for key, names in keys:
        row = next(line for line in page.splitlines() if line.startswith(f"| `{key}` |"))
        assert re.findall(r"`(\w+)`", row.split("|")[2]) == list(names), key
        comment = next(line for line in shipped.splitlines() if line.startswith(f"{key}:"))
        assert all(name in comment.split("#", 1)[1].split() for name in names), key


def test_another_model_is_one_registry_entry_its_booster_its_name_and_its_params_block(
    churn_small, monkeypatch, tmp_path
):
    from reprotab.model.boosters import BOOSTERS, ForestBooster
    from reprotab.params import names

    class ExtraTreesBooster(ForestBooster):  # its trees are stored as a forest's
        family = "extra_trees"

    monkeypatch.setitem(
        MODELS,
        "extra_trees",
        ModelSpec("sklearn.ensemble:ExtraTreesClassifier", "sklearn.ensemble:ExtraTreesRegressor"),
    )
    monkeypatch.setitem(BOOSTERS, "extra_trees", ExtraTreesBooster)
    monkeypatch.setattr(names, "MODELS", (*names.MODELS, "extra_trees"))
    params = parse_params(
        base_params(model="extra_trees", hyperparameters={"extra_trees": {"n_estimators": 20, "min_samples_leaf": 3}})
    )
    result = run(churn_small, params)
    assert type(result.model.estimator).__name__ == "ExtraTreesClassifier"
    assert result.model.estimator.n_estimators == 20
    assert 0.5 < result.metrics["test"]["roc_auc"] <= 1.0
    served.save(result.model, tmp_path / "model.zip")
    loaded = served.load(tmp_path / "model.zip")
    rows = result.splits["test"]
    assert loaded.family == "extra_trees" and loaded.estimator_name == "ExtraTreesClassifier"
    assert loaded.booster.size() == 20
    assert np.array_equal(loaded.predict_proba(rows), result.model.predict_proba(rows))


def test_an_unregistered_model_is_refused_with_the_registered_names():
    with pytest.raises(
        UserError,
        match=r"hyperparameters: must be one of random_forest, xgboost, lightgbm, catboost, linear\. Got 'xgb'",
    ):
        parse_params(base_params(hyperparameters={"xgb": {"max_depth": 3}}))


def test_infinite_numbers_become_missing_and_are_counted(churn_small):
    frame = pd.DataFrame({"a": [1.0, np.inf, -np.inf, 2.0], "b": ["x", "y", "z", "w"], "c": [1, 2, 3, 4]})
    cleaned, counts = infinities_to_missing(frame)
    assert counts == {"a": 2}
    assert cleaned["a"].isna().tolist() == [False, True, True, False]
    assert frame["a"].isin([np.inf]).any()  # the input is not modified


def test_prepare_reports_infinite_values_and_training_still_works(churn_small, caplog):
    frame = churn_small.copy()
    frame.loc[:9, "monthly_charges"] = np.inf
    params = parse_params(base_params(hyperparameters={"random_forest": {"n_estimators": 10}}))
    splits, _, summary = prepare_with(frame, params)
    assert summary["cleaning"]["infinite_to_missing"] == {"monthly_charges": 10}
    assert "column monthly_charges: 10 infinite values treated as missing" in caplog.text
    assert not np.isinf(splits["train"]["monthly_charges"].to_numpy(dtype=float, na_value=np.nan)).any()
    assert run(frame, params).metrics["test"]["roc_auc"] > 0.5


def command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reprotab", *args], capture_output=True, text=True, cwd=ROOT)


def test_command_lists_its_subcommands_and_each_has_help(capsys):
    listed = command("--help")  # the real command once; each subcommand's help in-process
    assert listed.returncode == 0
    for name in COMMANDS:
        assert name in listed.stdout
        with pytest.raises(SystemExit) as exited:
            cli_main([name, "--help"])
        assert exited.value.code == 0, name
        assert "usage:" in capsys.readouterr().out, name


def test_unknown_command_exits_2_with_a_suggestion():
    result = command("comapre")
    assert result.returncode == 2
    assert "Did you mean 'compare'?" in result.stderr and "Traceback" not in result.stderr


def test_check_command_reports_bad_params_with_exit_2(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text().replace("seed: 42", "seed: -4"))
    result = command("check", "--params", str(tmp_path / "params.yaml"))
    assert result.returncode == 2
    assert "seed: input should be greater than or equal to 0. Got -4." in result.stderr


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_wait_passively_unless_the_user_says_otherwise(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    code = "import reprotab, os, lightgbm; print(os.environ['OMP_WAIT_POLICY'])"
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == expected


def test_start_up_pauses_the_collector_and_the_stage_run_resumes_it(tmp_path):
    """`python -m stages.<name>` imports with the cyclic collector paused; stage_main turns it back on."""
    code = (
        "import gc, sys; sys.argv[:] = ['-m']; import stages; paused = not gc.isenabled(); "
        "from reprotab.runner import stage_main; seen = []; "
        "stage_main('probe', in_pipeline=False)(lambda argv: seen.append(gc.isenabled()))([]); "
        "print(paused, seen[0], gc.get_freeze_count() > 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.stdout.split() == ["True", "True", "True"], shown.stderr


def test_the_test_schedule_names_existing_test_files():
    """tests/conftest.py orders files longest first; a renamed file would silently fall to the end."""
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
    assert [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).is_file()] == []


def test_reading_params_loads_no_scikit_learn():
    """Every stage validates params.yaml, whose sampler and metric names come from the registries;
    a stage that never fits or scores (tune without a search) must not pay scikit-learn's and
    SciPy's import (about 1 s) for those names. Run in a fresh interpreter: this one has them."""
    code = (
        "import sys\n"
        "from reprotab.params.loader import load_params\n"
        "params = load_params('params.yaml')\n"
        "loaded = {name.split('.')[0] for name in sys.modules}\n"
        "heavy = sorted(loaded & {'sklearn', 'scipy', 'lightgbm', 'xgboost', 'matplotlib'})\n"
        "print(','.join(heavy) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "none", result.stdout
