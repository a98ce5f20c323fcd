"""Labeling queue (reprotab query) and label import (reprotab labels import)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.errors import UserError
from reprotab.labeling import active_learning, labels
from reprotab.labeling.active_learning import build_queue, check_pool, diverse, most_uncertain, uncertainty
from reprotab.labeling.labels import validate_labels
from reprotab.model import served
from reprotab.params.sections import TrainParams
from reprotab.train.fit import fit
from tests.helpers import ROOT
from tests.unit.train.test_train import SMALL, split_data

BINARY = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.99, 0.01], [0.45, 0.55]])


@pytest.mark.parametrize("strategy", ["margin", "entropy", "least_confidence"])
def test_binary_ranking_puts_the_closest_to_even_first(strategy):
    assert most_uncertain(uncertainty(BINARY, strategy), 5).tolist() == [0, 4, 2, 1, 3]


def test_margin_and_least_confidence_differ_on_three_classes():
    proba = np.array([[0.4, 0.4, 0.2], [0.34, 0.33, 0.33], [0.8, 0.1, 0.1]])
    assert most_uncertain(uncertainty(proba, "margin"), 2).tolist() == [0, 1]  # margins 0, 0.01
    assert most_uncertain(uncertainty(proba, "least_confidence"), 2).tolist() == [1, 0]  # 0.66, 0.6
    assert most_uncertain(uncertainty(proba, "entropy"), 1).tolist() == [1]
    assert uncertainty(proba, "random", seed=1).tolist() == uncertainty(proba, "random", seed=1).tolist()
    with pytest.raises(UserError, match=r"--strategy: must be one of .* Did you mean 'margin'"):
        uncertainty(proba, "margn")


def test_diversity_takes_the_best_of_each_cluster_instead_of_near_duplicates():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.01, (5, 2)), rng.normal(10, 0.01, (5, 2))])
    scores = np.array([0.9, 0.89, 0.88, 0.87, 0.86, 0.5, 0.49, 0.48, 0.47, 0.46])
    assert most_uncertain(scores, 2).tolist() == [0, 1]  # both from the first clump
    assert diverse(scores, points, 2, seed=0).tolist() == [0, 5]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    splits, schema, featurizer, train, validation = split_data(800)
    model, _ = fit(
        features=train,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
        validation=validation,
        settings=TrainParams(),
    )
    return splits, model


def pool(rows=60, seed=9):
    frame = generate(rows=rows, seed=seed).drop(columns=["churned", "next_month_spend"])
    frame["customer_id"] = "p-" + frame["customer_id"].astype(str)
    return frame


def test_queue_holds_the_most_uncertain_rows_ranked(trained):
    _, model = trained
    rows = check_pool(pool(), model=model, n=10, labeled_ids=set())
    queue = build_queue(rows, model=model, n=10, strategy="margin", version="abc")
    scores = uncertainty(model.predict_proba(rows), "margin")
    assert (
        queue["customer_id"].tolist()
        == rows["customer_id"].to_numpy()[np.argsort(-scores, kind="stable")[:10]].tolist()
    )
    assert queue["rank"].tolist() == list(range(1, 11)) and queue["score"].is_monotonic_decreasing
    assert set(queue["prediction"]) <= set(model.schema.classes) and (queue["label"] == "").all()
    assert set(model.schema.features) <= set(queue.columns) and set(queue["model_version"]) == {"abc"}
    tasks = active_learning.label_studio_tasks(queue)
    assert len(tasks) == 10 and json.dumps(tasks) and "label" not in tasks[0]["data"]


def test_bad_pools_get_one_clear_message(trained):
    _, model = trained
    renamed = pool().rename(columns={"tenure_months": "tenure_mnths"})
    with pytest.raises(UserError, match=r"--pool: lacks 1 feature column.*Rename 'tenure_mnths' to 'tenure_months'"):
        check_pool(renamed, model=model, n=5, labeled_ids=set())
    with pytest.raises(UserError, match=r"--pool: has 1 rows already labeled"):
        check_pool(pool(), model=model, n=5, labeled_ids={"p-C009-000003"})
    with pytest.raises(UserError, match=r"--n: must be between 1 and the pool's 60 rows. Got 61"):
        check_pool(pool(), model=model, n=61, labeled_ids=set())


def queue_frame():
    return pd.DataFrame({"customer_id": ["a", "b", "c", "d"], "rank": [1, 2, 3, 4], "x": [1.0, 2.0, 3.0, 4.0]})


def validate(filled, **overrides):
    kwargs = {
        "queue": queue_frame(),
        "classes": (False, True),
        "id_column": "customer_id",
        "target": "churned",
        "test_ids": {"t"},
        "known_ids": {"old"},
        "raw_columns": pd.Series({"customer_id": "object", "x": "float64", "churned": "bool", "extra": "float64"}),
    }
    return validate_labels(filled, **{**kwargs, **overrides})


def test_import_keeps_exactly_the_filled_rows_with_the_raw_columns():
    filled = pd.DataFrame({"customer_id": ["c", "a", "b"], "label": ["True", "False", np.nan]})
    batch = validate(filled)
    assert list(batch.columns) == ["customer_id", "x", "churned", "extra"]
    assert batch["customer_id"].tolist() == ["c", "a"] and batch["x"].tolist() == [3.0, 1.0]
    assert batch["churned"].tolist() == [True, False] and batch["extra"].isna().all()


@pytest.mark.parametrize(
    ("ids", "values", "message"),
    [
        (["a", "zz"], ["True", "True"], r"has ids that are not in the queue. Got \['zz'\]"),
        (["a", "a"], ["True", "False"], r"repeats ids"),
        (
            ["a", "b"],
            ["True", "Ture"],
            r"must be one of the model's classes \['False', 'True'\]. Got 'Ture'.*new class",
        ),
        (["a", "old"], ["True", "True"], r"already labeled"),
    ],
)
def test_import_refuses_bad_labels(ids, values, message):
    with pytest.raises(UserError, match=message):
        validate(pd.DataFrame({"customer_id": ids, "label": values}))


def test_import_refuses_test_split_ids():
    queue = pd.concat([queue_frame(), pd.DataFrame({"customer_id": ["t"], "rank": [5], "x": [5.0]})])
    with pytest.raises(UserError, match=r"ids of the test split.*Got \['t'\]"):
        validate(pd.DataFrame({"customer_id": ["a", "t"], "label": ["True", "True"]}), queue=queue)


def test_query_then_import_on_disk_appends_one_batch_and_nothing_on_error(trained, tmp_path, monkeypatch):
    splits, model = trained
    (tmp_path / "data/raw").mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    raw = pd.concat([splits["train"], splits["validation"]]).assign(next_month_spend=1.0)
    raw.to_parquet(tmp_path / "data/raw/churn.parquet", index=False)
    (tmp_path / "data/prepared").mkdir()
    splits["test"].to_parquet(tmp_path / "data/prepared/test.parquet", index=False)
    served.save(model, tmp_path / "models/model.zip")
    pool().to_csv(tmp_path / "pool.csv", index=False)
    monkeypatch.chdir(tmp_path)
    active_learning.main(["--pool", "pool.csv", "--n", "6", "--strategy", "entropy", "--diversity", "--label-studio"])
    queue = pd.read_csv("labeling/queue.csv")
    assert len(queue) == 6 and len(json.loads((tmp_path / "labeling/queue.json").read_text())) == 6
    filled = queue.assign(label=["True", "False", "True", None, None, None])
    bad = filled.assign(label=["True", "False", "perhaps", None, None, None])
    bad.to_csv("bad.csv", index=False)
    with pytest.raises(SystemExit) as exit_info:
        labels.main(["import", "bad.csv"])
    assert exit_info.value.code == 2 and not (tmp_path / "data/batches").exists()
    filled.to_csv("filled.csv", index=False)
    labels.main(["import", "filled.csv"])
    (batch_file,) = (tmp_path / "data/batches").glob("*-labels.parquet")
    batch = pd.read_parquet(batch_file)
    assert batch["customer_id"].tolist() == queue["customer_id"].head(3).tolist()
    assert list(batch.columns) == list(raw.columns) and batch["churned"].tolist() == [True, False, True]
    with pytest.raises(SystemExit):  # the same labels again: already labeled, nothing written
        labels.main(["import", "filled.csv"])
    assert len(list((tmp_path / "data/batches").iterdir())) == 1
