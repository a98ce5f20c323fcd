"""engine: dask on a real LocalCluster (2 workers × 1 thread, 127.0.0.1, dashboard off): XGBoost with
early stopping and LightGBM into the same bundle, byte-identical reruns, one partition spread over
both workers, partitioned scoring of only new partitions, and the whole pipeline under `dvc repro`."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster
from sklearn.metrics import roc_auc_score

from reprotab.data.demo import generate
from reprotab.engine.prepare import prepare_partitions
from reprotab.engine.scoring import predict_folder, score_split
from reprotab.engine.train import run_train_dask
from reprotab.errors import UserError
from reprotab.evaluate.scores import evaluate
from reprotab.model import served
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from reprotab.serving.predict import predict_file
from reprotab.stats.metrics import flatten
from reprotab.tune.best import BestParams
from reprotab.tune.run import run_search
from reprotab.tune.search import WORKER
from reprotab.tune.studies import FINISHED, open_storage
from tests.helpers import DVC, base_params, make_repo, sh
from tests.integration.test_registry import cli
from tests.unit.engine.test_partitions import write_parts

pytestmark = pytest.mark.integration
NO_SEARCH = BestParams(tuner="none", model=None, params={}, searched=False)


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, processes=True
        ) as cluster,
        Client(cluster) as connected,
    ):
        yield connected


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return generate(rows=4000, seed=11)


def settings(folder: Path, **overrides):
    hyper = {"xgboost": {"n_estimators": 400, "learning_rate": 0.1, "max_depth": 4}, "lightgbm": {"n_estimators": 40}}
    return parse_params(
        base_params(
            **{
                "engine": "dask",
                "model": "xgboost",
                "data": {"path": str(folder)},
                "hyperparameters": hyper,
                **overrides,
            }
        )
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, table):
    root = tmp_path_factory.mktemp("dask")
    write_parts(root / "parts", table, [1500, 3000])
    schema, _ = prepare_partitions(settings(root / "parts"), root / "prepared")
    return root, schema


def train(client, prepared, **overrides):
    root, schema = prepared
    return run_train_dask(
        schema=schema,
        best=NO_SEARCH,
        params=settings(root / "parts", **overrides),
        prepared=root / "prepared",
        client=client,
    )


def test_xgboost_stops_early_on_the_validation_split_and_ships_the_usual_bundle(client, prepared):
    trained = train(client, prepared, train={"refit": False})
    assert 1 <= trained.summary["best_iteration"] < 400
    assert trained.summary["size"] == trained.summary["best_iteration"]
    model = served.loads(trained.model.to_bytes())  # the bundle's own checks pass
    test = pd.read_parquet(prepared[0] / "prepared" / "test.parquet")
    assert roc_auc_score(test["churned"], model.predict_proba(test)[:, 1]) > 0.8
    assert trained.card.engine["workers"] == 2 and trained.card.engine["part_files"] == {"train": 3}
    assert trained.card.training_rows == len(pd.read_parquet(prepared[0] / "prepared" / "train.parquet"))
    unseen = test.head(20).assign(region="atlantis", contract=None)  # categories the featurizer never saw
    assert model.predict_proba(unseen).shape == (20, 2)


def test_two_runs_give_a_byte_identical_model(client, prepared):
    first = train(client, prepared).model.to_bytes()
    second = train(client, prepared).model.to_bytes()
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()


def test_one_partition_is_cut_so_every_worker_holds_validation_rows(client, tmp_path, table):
    write_parts(tmp_path / "one", table.iloc[:2000], [])
    params = settings(tmp_path / "one")
    schema, _ = prepare_partitions(params, tmp_path / "prepared")
    assert len(list((tmp_path / "prepared" / "validation.parquet").iterdir())) == 1
    trained = run_train_dask(
        schema=schema, best=NO_SEARCH, params=params, prepared=tmp_path / "prepared", client=client
    )
    assert trained.summary["best_iteration"] >= 1


def test_lightgbm_trains_its_fixed_rounds_and_refit_all_ships_a_model_of_every_row(client, prepared):
    trained = train(client, prepared, model="lightgbm", train={"refit": "all"})
    assert trained.summary["size"] == trained.summary["refit"]["n_estimators"]
    assert "best_iteration" not in trained.summary  # lightgbm.dask does not stop early
    assert trained.judged is not trained.model
    assert set(trained.card.trained_on_rows) == {"train", "validation", "test"}
    assert trained.card.judged["trained_on_rows"].keys() == {"train", "validation"}


def test_a_folder_is_scored_partition_by_partition_and_only_new_ones_after(client, prepared, tmp_path, table):
    root, _ = prepared
    model = train(client, prepared, train={"refit": False}).model
    scored = tmp_path / "scored"
    first = predict_folder(model, version="v1", input=root / "parts", output=scored, chunk_rows=700, client=client)
    assert (first["partitions"], first["processed"], first["rows"]) == (3, 3, 4000)
    name = "month=2026-02/part-0.parquet"
    predict_file(model, version="v1", input=root / "parts" / name, output=tmp_path / "one.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(scored / name), pd.read_parquet(tmp_path / "one.parquet"))
    before = (scored / name).stat().st_ino
    fresh = tmp_path / "parts"
    shutil.copytree(root / "parts", fresh)
    (fresh / "month=2026-04").mkdir()
    generate(rows=300, seed=99).to_parquet(fresh / "month=2026-04" / "part-0.parquet", index=False)
    second = predict_folder(model, version="v1", input=fresh, output=scored, chunk_rows=700, client=client)
    assert (second["processed"], second["reused"], second["rows"]) == (1, 3, 4300)
    assert (scored / name).stat().st_ino == before  # reused: the same file, linked into the new folder
    bad = fresh / "month=2026-05" / "part-0.parquet"
    bad.parent.mkdir()
    generate(rows=50, seed=1).assign(tenure_months="n/a").to_parquet(bad, index=False)
    with pytest.raises(UserError, match=r"month=2026-05/part-0\.parquet: numeric features hold text"):
        predict_folder(model, version="v1", input=fresh, output=scored, chunk_rows=700, client=client)
    manifest = json.loads((scored / "_manifest.json").read_text())
    assert len(manifest["partitions"]) == 4 and not (scored / "month=2026-05").exists()  # the old output, whole


def test_evaluate_scores_each_part_file_on_a_worker_as_one_table_would_be(client, prepared):
    folder = prepared[0] / "prepared"
    model = train(client, prepared).model
    whole = {split: pd.read_parquet(folder / f"{split}.parquet") for split in ("validation", "test")}
    scored = {split: score_split(model, folder / f"{split}.parquet", client) for split in ("validation", "test")}
    local, _, local_predictions, _ = evaluate(model=model, **whole, metric="roc_auc", seed=0)
    parted, _, predictions, summary = evaluate(
        model=model,
        validation=whole["validation"],
        test=scored["test"][2],
        metric="roc_auc",
        seed=0,
        scored={split: found[:2] for split, found in scored.items()},
    )
    assert flatten(parted) == pytest.approx(flatten(local))
    assert len(predictions) == len(whole["test"]) and f"{len(whole['test']):,}" in summary
    pd.testing.assert_frame_equal(
        predictions.sort_values("customer_id").reset_index(drop=True),
        local_predictions.sort_values("customer_id").reset_index(drop=True),
    )


def test_the_search_runs_its_trials_on_the_workers_in_one_shared_study(client, table, tmp_path):
    raw = base_params(model="xgboost", hyperparameters={"xgboost": {"n_estimators": 60, "n_jobs": 1}})
    prepared = run(table, parse_params(raw))  # prepared splits, as prepare writes them, and the schema
    splits, schema = prepared.splits, prepared.model.schema
    tune = {"n_trials": 6, "n_jobs": 2, "cv_folds": 2, "cv_repeats": 1, "confirm": False}
    params = parse_params({**raw, "engine": "dask", "tuner": "random", "tune": {**raw["tune"], **tune}})
    reopen = functools.partial(open_storage, None, str(tmp_path / "study.journal"))

    def search():
        return run_search(
            train=splits["train"],
            validation=splits["validation"],
            schema=schema,
            params=params,
            storage=reopen(),
            study_file="study.journal",
            client=client,
            reopen=reopen,
        )

    study, best = search()
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    assert len(finished) >= 6  # two tasks may each start a trial before the study holds six
    ran_on = {trial.user_attrs["worker"] for trial in finished}
    assert len(ran_on) == 2 and WORKER not in ran_on  # both workers, never this process
    assert best is not None and best["model"] == "xgboost" and "n_estimators" in best["params"]
    again, _ = search()
    assert len(again.trials) == len(study.trials)  # a finished study runs no new trial


def test_dvc_repro_on_dask_reproduces_the_model_and_processes_only_a_new_partition(tmp_path, table):
    repo = make_repo(tmp_path / "repo")
    write_parts(repo / "data" / "parts", table.iloc[:3000], [1000, 2000])
    raw = base_params(engine="dask", model="xgboost", data={"path": "data/parts"}, tuner="random")
    raw["hyperparameters"]["xgboost"].update(n_estimators=100, learning_rate=0.2)
    raw["tune"].update(n_trials=4, n_jobs=2, cv_folds=2, cv_repeats=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sh([DVC, "repro"], repo)
    trials = pd.read_csv(repo / "reports" / "tune" / "trials.csv")
    assert len(trials) >= 4 and trials["user_attrs_worker"].nunique() == 2  # the search ran on both workers
    first = hashlib.sha256((repo / "models" / "model.zip").read_bytes()).hexdigest()
    sh([DVC, "repro", "--force", "prepare", "train"], repo)
    assert hashlib.sha256((repo / "models" / "model.zip").read_bytes()).hexdigest() == first
    card = json.loads((repo / "models" / "model.json").read_text())
    assert card["engine"]["workers"] == 2
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "month one"], repo)
    assert cli(repo, "register")[0] == 0
    assert cli(repo, "promote", "v1.0.0", "--stage", "prod")[0] == 0  # freezes the test split, a folder of parts
    pin = json.loads((repo / "models" / "champion.json").read_text())
    assert pin["reference"]["rows"] == len(pd.read_parquet(repo / "data" / "prepared" / "test.parquet"))
    new = repo / "data" / "parts" / "month=2026-04" / "part-0.parquet"
    new.parent.mkdir()
    table.iloc[3000:].to_parquet(new, index=False)
    sh([DVC, "repro"], repo)
    summary = json.loads((repo / "reports" / "prepare" / "summary.json").read_text())
    assert summary["partitions"] == {"count": 4, "processed": 1, "reused": 3}
    assert summary["data"]["rows"] == 4000
