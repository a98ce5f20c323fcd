"""Pseudo-labeling: per-class thresholds, the cap, the weights, and that no held-out row is ever labeled.
`dvc exp run` with it on is tests/integration/test_pseudo_labeling.py."""

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.errors import UserError
from reprotab.params.loader import parse_params
from reprotab.params.sections import PseudoLabelingParams, TrainParams
from reprotab.train.families import MODELS, build_estimator, fit_estimator
from reprotab.train.fit import fit
from reprotab.train.pseudo_labeling import class_thresholds, pick, room_left, self_train, unlabeled_features
from tests.helpers import base_params
from tests.unit.train.test_estimators import SMALL
from tests.unit.train.test_train import split_data


def two_class(confidence, predicted, truth):
    """Probabilities whose most probable class is `predicted` with probability `confidence`."""
    proba = np.zeros((len(confidence), 2))
    for i, (c, k) in enumerate(zip(confidence, predicted, strict=True)):
        proba[i, k], proba[i, 1 - k] = c, 1 - c
    return proba, np.array(truth)


def test_thresholds_are_the_lowest_reaching_the_target_precision():
    # class 0 predicted with 0.99 0.95 0.9 0.8 (right) 0.7 0.6 (wrong): precision 1 1 1 1 .8 .667
    # class 1 predicted twice, both wrong: no threshold reaches any precision
    proba, y = two_class([0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.9, 0.8], [0] * 6 + [1, 1], [0, 0, 0, 0, 1, 1, 0, 0])
    strict = class_thresholds(proba, y, target_precision=0.95)
    assert strict[0] == {"threshold": 0.8, "precision": 1.0, "support": 4}
    assert strict[1]["threshold"] is None
    loose = class_thresholds(proba, y, target_precision=0.8)
    assert loose[0] == {"threshold": 0.7, "precision": 0.8, "support": 5}
    assert class_thresholds(proba, y, target_precision=0.8, min_support=6)[0]["threshold"] is None
    for target, entry in ((0.95, strict[0]), (0.8, loose[0])):  # recomputed from scratch
        above = (proba.argmax(axis=1) == 0) & (proba.max(axis=1) >= entry["threshold"])
        assert (y[above] == 0).mean() >= target


def test_a_threshold_takes_every_row_tied_with_it():
    proba, y = two_class([0.9, 0.9, 0.8], [0, 0, 0], [0, 1, 0])  # at 0.9 both tied rows count: precision 0.5
    assert class_thresholds(proba, y, target_precision=1.0)[0]["threshold"] is None
    assert class_thresholds(proba, y, target_precision=0.6)[0]["threshold"] == 0.8


def test_pick_respects_thresholds_and_the_room_keeping_class_shares():
    proba, _ = two_class([0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.5, 0.99, 0.98], [0] * 7 + [1, 1], [0] * 9)
    thresholds = [{"threshold": 0.9}, {"threshold": 0.95}]
    rows, labels = pick(proba, thresholds, room=100)
    assert sorted(rows.tolist()) == [0, 1, 2, 3, 4, 5, 7, 8]  # row 6 is below class 0's threshold
    rows, labels = pick(proba, thresholds, room=4)  # 6 of class 0, 2 of class 1 → 3 and 1, most confident
    assert sorted(rows.tolist()) == [0, 1, 2, 7] and sorted(labels.tolist()) == [0, 0, 0, 1]
    assert len(pick(proba, [{"threshold": None}, {"threshold": None}], room=10)[0]) == 0


def test_room_keeps_pseudo_rows_under_their_share():
    assert room_left(real_rows=100, pseudo_rows=0, max_share=0.5) == 100
    assert room_left(real_rows=100, pseudo_rows=30, max_share=0.2) == 0
    assert room_left(real_rows=80, pseudo_rows=0, max_share=0.2) == 20  # 20 / (80 + 20) = 0.2


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("rounds", [None, 3])
def test_every_model_takes_sample_weights_with_and_without_early_stopping(model, rounds):
    rng = np.random.default_rng(0)
    X, y = pd.DataFrame(rng.normal(size=(60, 3)), columns=list("abc")), (rng.random(60) > 0.5).astype(int)
    estimator = build_estimator(model=model, task="classification", hyperparameters=SMALL[model], seed=0)
    fit_estimator(
        estimator, X, y, model=model, eval_set=(X, y), early_stopping_rounds=rounds, sample_weight=np.full(60, 0.5)
    )
    assert estimator.predict_proba(X).shape == (60, 2)


@pytest.fixture(scope="module")
def churn():
    return split_data(1500)


def test_pseudo_labels_never_reach_held_out_rows_and_respect_the_cap(churn):
    splits, schema, featurizer, train, validation = churn
    new = generate(rows=1500, seed=11).drop(columns=["churned"])
    new["customer_id"] = "new-" + new["customer_id"].astype(str)
    held_out = pd.concat([splits["validation"], splits["test"]]).drop(columns=["churned"])
    frame = pd.concat([held_out, splits["train"].drop(columns=["churned"]).head(50), new], ignore_index=True)
    known = {name: splits[name][schema.id_column] for name in ("train", "validation", "test")}
    unlabeled, info = unlabeled_features(frame, schema=schema, featurizer=featurizer, known_ids=known)
    assert info["dropped_known_ids"] == {
        "train": 50,
        "validation": len(splits["validation"]),
        "test": len(splits["test"]),
    }
    assert set(unlabeled.index) == set(new["customer_id"])
    config = PseudoLabelingParams(enabled=True, max_share=0.2, target_precision=0.9, max_iter=2, min_support=5)
    _, summary, pseudo = self_train(
        unlabeled=unlabeled,
        config=config,
        features=train,
        schema=schema,
        validation=validation,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
        settings=TrainParams(),
    )
    assert len(pseudo) > 0
    assert not set(pseudo.index) & set(held_out["customer_id"])
    assert set(pseudo.index) <= set(new["customer_id"])
    assert len(pseudo) / (len(train) + len(pseudo)) <= 0.2
    report = summary["pseudo_labeling"]
    assert report["pseudo_rows"] == len(pseudo) and report["pseudo_share"] <= 0.2
    first = report["rounds"]["round_1"]
    assert sum(first["added"].values()) == first["pseudo_rows_total"]
    for name, precision in first["validation_precision"].items():
        assert precision is None or precision >= 0.9, name
    assert summary["training_rows"] == len(train)  # the sampler's count: real rows only


def test_extra_rows_join_after_resampling(churn):
    """random_over balances the real rows; the pseudo rows (all class 0) are appended untouched."""
    _, schema, featurizer, train, validation = churn
    X = train.drop(columns=[schema.target]).head(40)
    _, summary = fit(
        features=train,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters=SMALL["random_forest"],
        seed=0,
        sampler="random_over",
        validation=validation,
        settings=TrainParams(),
        extra_rows=(X, np.zeros(40, dtype=int), np.full(40, 0.5)),
    )
    majority = int((train[schema.target] == train[schema.target].mode()[0]).sum())
    assert summary["training_rows"] == len(train) and summary["training_rows_resampled"] == 2 * majority


def test_unlabeled_rows_must_not_hold_labels_and_must_have_the_features(churn):
    _, schema, featurizer, _, _ = churn
    rows = generate(rows=30, seed=5)
    with pytest.raises(UserError, match=r"data.unlabeled_path: holds values of the target 'churned'"):
        unlabeled_features(rows, schema=schema, featurizer=featurizer, known_ids={})
    renamed = rows.drop(columns=["churned"]).rename(columns={"tenure_months": "tenure"})
    with pytest.raises(UserError, match=r"lacks 1 feature column.*'tenure_months'.*Rename 'tenure' to 'tenure_months'"):
        unlabeled_features(renamed, schema=schema, featurizer=featurizer, known_ids={})


def test_params_refuse_pseudo_labeling_for_regression_and_with_init_model():
    data = {**base_params()["data"], "target": "next_month_spend", "drop_columns": ["churned"]}
    on = {**base_params()["train"], "pseudo_labeling": {"enabled": True}}
    with pytest.raises(UserError, match=r"train.pseudo_labeling.enabled: .*classification only"):
        parse_params(base_params(task="regression", metric="rmse", data=data, train=on))
    with pytest.raises(UserError, match=r"train.pseudo_labeling.enabled: cannot be combined with train.init_model"):
        parse_params(base_params(train={**on, "init_model": "models/previous.zip"}))
    with pytest.raises(UserError, match=r"train.pseudo_labeling.max_share"):
        parse_params(base_params(train={**on, "pseudo_labeling": {"max_share": 1.0}}))
