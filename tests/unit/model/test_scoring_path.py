"""The served scoring path (plan → float32 matrix → booster → calibrator) predicts what the fitted
scikit-learn featurizer and estimator predict, within 1e-6, for every family and task, with and
without calibration, on generated rows as a client sends them: unseen categories, blanks, numbers
stored as text, booleans, missing values. Both entry points are held to it: a cleaned frame
(batch scoring, evaluate, the gate) and JSON rows (the service)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from reprotab.data.incoming import NotNumbers, clean_incoming, clean_rows
from reprotab.model import served
from reprotab.model.calibration import Calibrator, logit
from reprotab.model.featurizer import fit_featurizer
from reprotab.model.schema import Schema, encode_target
from reprotab.model.served import TabularModel
from reprotab.params.sections import FeaturizeParams
from reprotab.train.families import build_estimator
from tests.helpers import generate

TOLERANCE = 1e-6
TASKS = {  # kind → (task, target, columns left out)
    "binary": ("classification", "churned", ["next_month_spend"]),
    "multiclass": ("classification", "contract", ["churned", "next_month_spend"]),
    "regression": ("regression", "next_month_spend", ["churned"]),
}
SMALL = {  # a few trees, one thread
    "lightgbm": {"n_estimators": 15, "n_jobs": 1},
    "xgboost": {"n_estimators": 15, "n_jobs": 1},
    "random_forest": {"n_estimators": 15, "n_jobs": 1, "max_depth": 6},
    "catboost": {"n_estimators": 15, "depth": 4, "thread_count": 1},
    "linear": {"alpha": 1.0},
}
CASES = [
    (family, kind, calibration)
    for family in SMALL
    for kind in TASKS
    for calibration in (("none", "sigmoid", "isotonic") if kind != "regression" else ("none",))
]


def _old_calibration(method: str, fit_proba: np.ndarray, y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The calibrator as the pickled models applied it: scikit-learn's models per class."""
    columns = [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))
    out = []
    for k in columns:
        hit = (y == k).astype(int)
        if method == "isotonic":
            floor = 0.5 / len(hit)
            curve = IsotonicRegression(y_min=floor, y_max=1 - floor, out_of_bounds="clip").fit(fit_proba[:, k], hit)
            out.append(curve.predict(proba[:, k]))
        else:
            out.append(
                LogisticRegression(C=1e6).fit(logit(fit_proba[:, k]), hit).predict_proba(logit(proba[:, k]))[:, 1]
            )
    if len(columns) == 1:
        return np.column_stack([1 - out[0], out[0]])
    stacked = np.column_stack(out)
    total = stacked.sum(axis=1, keepdims=True)
    return np.where(total > 0, stacked / np.where(total > 0, total, 1), 1 / stacked.shape[1])


class Fitted:
    """One family × task × calibration: the scikit-learn parts and the served model made of them."""

    def __init__(self, family: str, kind: str, calibration: str) -> None:
        task, target, dropped = TASKS[kind]
        data = generate(rows=900, seed=3).drop(columns=["customer_id", *dropped])
        data["total_charges"] = pd.to_numeric(data["total_charges"], errors="coerce")
        data.loc[data.index % 11 == 0, "age"] = np.nan  # gaps: imputation and a missing indicator
        self.schema = Schema.infer(data, task=task, target=target, id_column=None)
        # region (7 levels) is target-encoded, the others one-hot; numbers scaled for the forest
        config = FeaturizeParams(max_categories=5, scale=family == "random_forest", rare_category_min_share=0.05)
        fit_rows, held = data.iloc[:700], data.iloc[700:]
        self.featurizer, features = fit_featurizer(fit_rows, schema=self.schema, config=config, seed=0)
        self.estimator = build_estimator(model=family, task=task, hyperparameters=SMALL[family], seed=0)
        self.estimator.fit(features, encode_target(fit_rows[target], self.schema))
        self.calibration, self.calibrator = calibration, None
        if calibration != "none":
            self.fit_proba = self.estimator.predict_proba(self.featurizer.transform(held[list(self.schema.features)]))
            self.fit_y = encode_target(held[target], self.schema)
            self.calibrator = Calibrator(calibration).fit(self.fit_proba, self.fit_y)
        model = TabularModel.from_fitted(
            featurizer=self.featurizer,
            estimator=self.estimator,
            family=family,
            schema=self.schema,
            threshold=0.4 if kind == "binary" else None,
            calibrator=self.calibrator,
        )
        self.model = served.loads(model.to_bytes())  # what a consumer gets from the file
        self.categories = {c: sorted(map(str, data[c].dropna().unique())) for c in self.schema.categorical}

    def old(self, frame: pd.DataFrame) -> np.ndarray:
        features = self.featurizer.transform(frame[list(self.schema.features)])
        if self.schema.task == "regression":
            return np.asarray(self.estimator.predict(features), dtype=float)
        proba = np.asarray(self.estimator.predict_proba(features), dtype=float)
        if self.calibrator is not None:
            proba = _old_calibration(self.calibration, self.fit_proba, self.fit_y, proba)
        return proba


FITTED: dict[tuple[str, str, str], Fitted] = {}


def fitted(case: tuple[str, str, str]) -> Fitted:
    if case not in FITTED:
        FITTED[case] = Fitted(*case)
    return FITTED[case]


def numeric_value() -> st.SearchStrategy[Any]:
    number = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
    return st.one_of(
        number,
        st.integers(-1000, 100_000),
        number.map(lambda v: f" {v!r} "),  # a number stored as text, padded
        st.integers(-50, 500).map(str),
        st.sampled_from(["", "  ", "true", "False", "inf", "-Infinity"]),
        st.booleans(),
        st.none(),
    )


def categorical_value(known: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(known),
        st.text(max_size=6),  # mostly categories never seen
        st.sampled_from(["", " ", known[0].upper()]),
        st.booleans(),
        st.none(),
    )


def rows_of(model: Fitted) -> st.SearchStrategy[list[dict[str, Any]]]:
    columns = {c: numeric_value() for c in model.schema.numeric}
    columns |= {c: categorical_value(model.categories[c]) for c in model.schema.categorical}
    return st.lists(st.fixed_dictionaries(columns), min_size=1, max_size=12)


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_the_served_path_predicts_what_the_fitted_pipeline_does(case):
    model = fitted(case)

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(rows=rows_of(model))
    def check(rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame.from_records(rows, columns=list(model.schema.features))
        try:
            cleaned = clean_incoming(frame, model.schema, featurizer=model.featurizer, where="rows")
        except NotNumbers as refused:  # too much text in a numeric field: both paths refuse the same columns
            with pytest.raises(NotNumbers) as also:
                clean_rows(rows, model.schema, known=model.model.plan.learned, where="rows")
            assert also.value.rows == refused.rows
            return
        expected = model.old(cleaned.frame)
        by_frame = model.model.predict_featurized(model.model.plan.frame_matrix(cleaned.frame))
        from_json = clean_rows(rows, model.schema, known=model.model.plan.learned, where="rows")
        assert dict(from_json.notes) == dict(cleaned.notes)  # the same cleaning notes, per column
        by_rows = model.model.predict_featurized(
            model.model.plan.matrix(from_json.numbers, from_json.levels, len(rows))
        )
        assert np.abs(by_frame - expected).max() <= TOLERANCE
        assert np.abs(by_rows - expected).max() <= TOLERANCE

    check()


def test_labels_use_the_threshold_and_classes_of_the_schema():
    model = fitted(("lightgbm", "binary", "sigmoid"))
    rows = generate(rows=200, seed=9).drop(columns=["customer_id", "churned", "next_month_spend"])
    proba = model.model.predict_proba(rows)
    assert model.model.predict(rows).tolist() == [bool(p >= 0.4) for p in proba[:, 1]]
