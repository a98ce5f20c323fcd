"""Feature importance per raw column: the model's own, and permutation importance.

- The model's own importance (`feature_importances_`: impurity for random forests, gain for
  XGBoost, split counts for LightGBM) is summed back from the featurizer's output columns to
  the raw column they came from (one-hot columns and missing-value flags), then scaled to
  shares that sum to 1, so it reads in the same columns as permutation importance.
- Permutation importance shuffles one raw column at a time through the whole model
  (featurizer included) on a seeded sample of the validation split, and reports how much the
  chosen metric gets worse (for loss metrics, how much the loss rises).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from joblib import parallel_config
from sklearn.inspection import permutation_importance as sk_permutation_importance

from reprotab.metrics import BY_TASK, LOWER_IS_BETTER, PROBABILITY_METRICS, Scored
from reprotab.preprocessing import one_hot_groups
from reprotab.served import TabularModel

MISSING_FLAG = "missingindicator_"  # SimpleImputer(add_indicator=True) output prefix


def source_columns(output_names: Iterable[str], *, features: Iterable[str], one_hot: dict[str, list[str]]) -> dict:
    """Each featurizer output column → the raw column it came from (one-hot columns and
    missing-value flags fold into their column; anything unknown keeps its own name)."""
    features = set(features)
    owner = {out: column for column, outs in one_hot.items() for out in outs}
    mapping = {}
    for name in output_names:
        flagged = name.removeprefix(MISSING_FLAG)
        if name in owner:
            mapping[name] = owner[name]
        elif name not in features and name.startswith(MISSING_FLAG) and flagged in features:
            mapping[name] = flagged
        else:
            mapping[name] = name
    return mapping


def aggregate_importance(importances: pd.Series, mapping: dict[str, str]) -> pd.Series:
    """Sum output-column importances per raw column, as shares summing to 1, largest first."""
    summed = importances.groupby(importances.index.map(lambda n: mapping.get(n, n))).sum()
    total = summed.sum()
    shares = summed / total if total > 0 else summed
    return shares.sort_values(ascending=False, kind="stable").rename("importance")


def model_importance(model: TabularModel) -> pd.Series | None:
    """The estimator's `feature_importances_` per raw column, or None when it has none."""
    estimator, featurizer = model.pipeline.named_steps["model"], model.pipeline.named_steps["features"]
    values = getattr(estimator, "feature_importances_", None)
    names = list(featurizer.get_feature_names_out())
    if values is None or len(values) != len(names):
        return None
    mapping = source_columns(names, features=model.schema.features, one_hot=one_hot_groups(featurizer))
    return aggregate_importance(pd.Series(np.asarray(values, dtype=float), index=names), mapping)


class Fitted:
    """A fitted TabularModel as sklearn's permutation_importance wants it (an object with `fit`);
    it is never refitted."""

    def __init__(self, model: TabularModel) -> None:
        self.model = model

    def fit(self, *args: Any, **kwargs: Any) -> Fitted:
        raise TypeError("the model is already fitted; permutation importance only scores it")


def metric_scorer(metric: str, task: str) -> Any:
    """A scorer `(Fitted(model), rows, y) -> float`, higher is better (loss metrics are negated)."""
    function, sign = BY_TASK[task][metric], -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(fitted: Fitted, rows: pd.DataFrame, y: np.ndarray) -> float:
        model = fitted.model
        if task == "regression":
            return sign * function(Scored(y_true=y, y_pred=model.predict(rows)))
        proba = model.predict_proba(rows)
        predicted = proba.argmax(axis=1) if metric in PROBABILITY_METRICS else model.predict_index(rows)
        positive = model.positive_index() if proba.shape[1] == 2 else None
        return sign * function(Scored(y_true=y, y_pred=predicted, proba=proba, positive=positive))

    return score


def permutation_importance(
    model: TabularModel, rows: pd.DataFrame, y: np.ndarray, *, metric: str, seed: int, n_repeats: int, max_rows: int
) -> pd.DataFrame:
    """Drop in `metric` when one raw column is shuffled, on at most `max_rows` seeded rows."""
    if len(rows) > max_rows:
        picked = np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False)
        picked.sort()
        rows, y = rows.iloc[picked], y[picked]
    X = rows[list(model.schema.features)]
    # Columns in parallel threads: tree predictions release the GIL, and threads share the model
    # instead of copying it into worker processes. Results do not depend on the thread count.
    with parallel_config(backend="threading"):
        result = sk_permutation_importance(
            Fitted(model),
            X,
            y,
            scoring=metric_scorer(metric, model.schema.task),
            n_repeats=n_repeats,
            random_state=seed,
            n_jobs=-1,
        )
    frame = pd.DataFrame(
        {
            "feature": X.columns,
            "importance": result.importances_mean.round(6),
            "std": result.importances_std.round(6),
        }
    )
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def importance_table(own: pd.Series | None, permutation: pd.DataFrame) -> pd.DataFrame:
    """Both importances per raw column, ranked by permutation importance."""
    table = permutation.rename(columns={"importance": "permutation", "std": "permutation_std"})
    table["model"] = table["feature"].map(own).round(6) if own is not None else np.nan
    return table[["feature", "permutation", "permutation_std", "model"]]
