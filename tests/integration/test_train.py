"""train in a reproduced copy of the project: the threshold never looks at the test split."""

import shutil
import sys

import joblib
import pytest

from reprotab.data.demo import generate
from reprotab.data.prepare import prepare
from reprotab.model.featurizer import featurize
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams, TrainParams
from reprotab.train.fit import fit
from tests.helpers import DVC, base_params, sh

pytestmark = pytest.mark.integration

SMALL = {
    "random_forest": {"n_estimators": 20, "n_jobs": 1},
    "xgboost": {"n_estimators": 20, "n_jobs": 1},
    "lightgbm": {"n_estimators": 20, "n_jobs": 1},
}


def split_data(rows: int, *, task: str = "classification", seed: int = 0):
    frame = generate(rows=rows, seed=seed)
    data = base_params()["data"]
    if task == "regression":
        data = {**data, "target": "next_month_spend", "drop_columns": ["churned"]}
    p = parse_params(base_params(task=task, data=data, metric="rmse" if task == "regression" else "roc_auc"))
    splits, schema, _ = prepare(
        frame, task=task, seed=0, data=p.data, test_size=0.2, validation_size=0.2, text_min_share=0.95
    )
    featurizer, train, validation = featurize(
        train=splits["train"], validation=splits["validation"], schema=schema, config=FeaturizeParams()
    )
    return splits, schema, featurizer, train, validation


@pytest.fixture(scope="module")
def churn():
    return split_data(3000)


def train(churn, model="random_forest", settings=None, hyperparameters=None, **kwargs):
    _, schema, featurizer, features, validation = churn
    return fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model=model,
        hyperparameters=hyperparameters or SMALL[model],
        seed=0,
        validation=validation,
        settings=settings or TrainParams(early_stopping_rounds=None),  # every round: tests count them
        **kwargs,
    )


def test_the_threshold_never_looks_at_the_test_split(reproduced):
    """Replace the test split with garbage: train must still run and choose the same threshold."""
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro", "train"], repo)
    chosen = joblib.load(repo / "models/model.joblib").threshold
    test = repo / "data/prepared/test.parquet"
    backup = repo / "test.parquet.bak"
    shutil.move(test, backup)
    test.write_bytes(b"garbage, not parquet")
    try:
        sh([sys.executable, "-m", "stages.train"], repo)
        assert joblib.load(repo / "models/model.joblib").threshold == chosen
    finally:
        shutil.move(backup, test)
