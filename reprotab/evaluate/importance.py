"""Feature importance per raw column: the model's own, and permutation importance.

- The model's own importance (`feature_importances_`: impurity for random forests, gain for
  XGBoost, split counts for LightGBM) is summed back from the featurizer's output columns to
  the raw column they came from (one-hot and target-encoded columns, missing-value flags), then scaled to
  shares that sum to 1, so it reads in the same columns as permutation importance.
- Permutation importance shuffles one raw column at a time through the whole model
  (featurizer included) on a seeded sample of the validation split, and reports how much the
  chosen metric gets worse (for loss metrics, how much the loss rises). The shuffled copies are
  scored in a few batched predictions, not one per column and repeat, and only those that
  change a row are predicted, once each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from reprotab.model.featurizer import safe_name
from reprotab.model.served import TabularModel
from reprotab.stats.metrics import BY_TASK, LOWER_IS_BETTER, PROBABILITY_METRICS, Scored

MISSING_FLAG = "missingindicator_"  # SimpleImputer(add_indicator=True) output prefix


def source_columns(output_names: Iterable[str], *, features: Iterable[str], groups: dict[str, list[str]]) -> dict:
    """Each featurizer output column → the raw column it came from, in the user's spelling
    (`groups`: the output columns of each categorical column, one-hot or target-encoded, see
    `encoded_groups`; they and missing-value flags fold into their column, safe names map back
    to the raw name; anything unknown keeps its own name)."""
    raw = {safe_name(feature): feature for feature in features}  # featurizer names → the user's names
    owner = {out: column for column, outs in groups.items() for out in outs}
    mapping = {}
    for name in output_names:
        flagged = name.removeprefix(MISSING_FLAG)
        if name in owner:
            mapping[name] = owner[name]
        elif name in raw:
            mapping[name] = raw[name]
        elif name.startswith(MISSING_FLAG) and flagged in raw:
            mapping[name] = raw[flagged]
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
    values = model.booster.importances()
    names = model.feature_names
    if values is None or len(values) != len(names):
        return None
    mapping = source_columns(names, features=model.schema.features, groups=model.plan.groups())
    return aggregate_importance(pd.Series(np.asarray(values, dtype=float), index=names), mapping)


BATCH_ROWS = 60_000  # rows per prediction: the permuted copies of as many columns as fit, at once


def scorer(metric: str, task: str) -> Any:
    """`score(model, y, predictions) -> float`, higher is better (loss metrics are negated), where
    `predictions` are probabilities (classification) or values (regression) of the served model."""
    function, sign = BY_TASK[task][metric], -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(model: TabularModel, y: np.ndarray, predicted: np.ndarray) -> float:
        if task == "regression":
            return sign * function(Scored(y_true=y, y_pred=predicted))
        labels = predicted.argmax(axis=1) if metric in PROBABILITY_METRICS else model.class_indices(predicted)
        positive = model.positive_index() if predicted.shape[1] == 2 else None
        return sign * function(Scored(y_true=y, y_pred=labels, proba=predicted, positive=positive))

    return score


def _predict(model: TabularModel, rows: pd.DataFrame) -> np.ndarray:
    return model.predict(rows) if model.schema.task == "regression" else model.predict_proba(rows)


def shuffles(n_rows: int, *, seed: int, n_repeats: int) -> list[np.ndarray]:
    """The row orders of the repeats, as scikit-learn's permutation_importance draws them for
    every column (one RandomState per column from the same derived seed; each repeat shuffles
    the previous order again), so both give the same numbers for the same seed."""
    derived = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    state, order, current, orders = np.random.RandomState(derived), np.arange(n_rows), np.arange(n_rows), []
    for _ in range(n_repeats):
        state.shuffle(order)
        current = current[order]
        orders.append(current)
    return orders


def permutation_importance(
    model: TabularModel, rows: pd.DataFrame, y: np.ndarray, *, metric: str, seed: int, n_repeats: int, max_rows: int
) -> pd.DataFrame:
    """Drop in `metric` when one raw column is shuffled, on at most `max_rows` seeded rows.

    Batched: the `n_repeats` shuffled copies of the sample for a column (and for as many columns
    as fit in `BATCH_ROWS`) are stacked and scored with one prediction, then split per column
    and repeat; a few large predictions cost far less than one per column and repeat. The
    featurizer works column by column (each output column comes from one raw column), so the
    sample is featurized once and a raw column is shuffled by shuffling the rows of its output
    columns, which is the same as featurizing the shuffled raw column; the estimator and the
    calibrator then score the copies that differ (see `_featurized_copies`). Should an output
    column not map to one raw column, the raw rows are shuffled and featurized instead. Either
    way the numbers equal scikit-learn's `permutation_importance` with the same seed."""
    if len(rows) > max_rows:
        picked = np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False)
        picked.sort()
        rows, y = rows.iloc[picked], y[picked]
    X = model.features_of(rows).reset_index(drop=True)
    n, columns = len(X), list(X.columns)
    features = model.featurize(X)
    owner = source_columns(features.columns, features=columns, groups=model.plan.groups())
    shuffled = np.concatenate(shuffles(n, seed=seed, n_repeats=n_repeats))
    if set(owner.values()) <= set(columns):
        outputs = {column: [out for out in features.columns if owner[out] == column] for column in columns}
        base = model.predict_featurized(features)
        copies = _featurized_copies(model, features, outputs, shuffled, base)
    else:  # not column-wise: shuffle and featurize the raw columns
        base = _predict(model, X)
        copies = _raw_copies(model, X, shuffled)
    score = scorer(metric, model.schema.task)
    baseline = score(model, y, base)
    drops = np.zeros((len(columns), n_repeats))
    for k, predicted in enumerate(copies):
        for r in range(n_repeats):
            drops[k, r] = baseline - score(model, y, predicted[r * n : (r + 1) * n])
    frame = pd.DataFrame(
        {"feature": columns, "importance": drops.mean(axis=1).round(6), "std": drops.std(axis=1).round(6)}
    )
    return frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _raw_copies(model: TabularModel, X: pd.DataFrame, shuffled: np.ndarray) -> Iterator[np.ndarray]:
    """Predictions of each column's shuffled copies (in column order), stacking the raw rows of
    as many columns as fit in `BATCH_ROWS` per prediction; every column keeps its dtype."""
    n, copies, columns = len(X), len(shuffled), list(X.columns)
    per_batch = max(1, BATCH_ROWS // copies)
    for start in range(0, len(columns), per_batch):
        batch = columns[start : start + per_batch]
        plain = np.tile(np.arange(n), len(batch) * (copies // n))
        stacked = {column: X[column].take(plain).reset_index(drop=True) for column in columns}
        for k, column in enumerate(batch):
            index = plain.copy()
            index[k * copies : (k + 1) * copies] = shuffled
            stacked[column] = X[column].take(index).reset_index(drop=True)
        predicted = _predict(model, pd.DataFrame(stacked, columns=columns))
        for k in range(len(batch)):
            yield predicted[k * copies : (k + 1) * copies]


def _featurized_copies(
    model: TabularModel,
    features: pd.DataFrame,
    outputs: dict[str, list[str]],
    shuffled: np.ndarray,
    base: np.ndarray,
) -> Iterator[np.ndarray]:
    """Predictions of each raw column's shuffled copies (in column order) from the featurized
    sample, predicting only the copies that change a row, once each (see `_distinct_copies`):
    on a table of 0/1 flags and few-level categories that is about half of them. A model scores
    each row on its own, so the others take the same numbers from the unshuffled rows (`base`)
    or from the equal copy."""
    # featurized columns are all numbers: one float64 matrix (exact for float32 too) is stacked by
    # fancy indexing, far cheaper than a pandas take per column and batch
    matrix = features.to_numpy(dtype=np.float64)
    position = {out: i for i, out in enumerate(features.columns)}
    target = np.arange(len(shuffled)) % len(matrix)  # the row each copy replaces
    plans = []
    for names in outputs.values():
        cols = [position[out] for out in names]
        plans.append((cols, *_distinct_copies(matrix[:, cols], shuffled)))

    def blocks() -> Iterator[np.ndarray]:
        for cols, _, picked, _ in plans:
            block = matrix[target[picked]]
            block[:, cols] = matrix[np.ix_(shuffled[picked], cols)]
            yield block

    distinct = _predict_blocks(model, blocks(), features.columns)
    for (_, changed, _, which), predicted in zip(plans, distinct, strict=True):
        copies = base[target]
        if len(changed):
            copies[changed] = predicted[which]
        yield copies


def _distinct_copies(values: np.ndarray, shuffled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the shuffled copies of one raw column's output `values` (copy i gives row i mod n the
    values of row `shuffled[i]`): the copies that change their row, one copy of each distinct
    change to predict, and which of those each changed copy takes. A copy that gives a row its
    own values is the row itself; a row given the same values twice is the same input twice.
    Values compare as bytes, so equal means the very same input to the model."""
    n = len(values)
    as_bytes = np.ascontiguousarray(values).view(np.dtype((np.void, values.itemsize * values.shape[1])))
    code = np.unique(as_bytes.ravel(), return_inverse=True)[1].ravel()
    target = np.arange(len(shuffled)) % n
    changed = np.flatnonzero(code[shuffled] != code[target])
    key = target[changed] * (int(code.max(initial=0)) + 1) + code[shuffled[changed]]
    _, first, which = np.unique(key, return_index=True, return_inverse=True)
    return changed, changed[first], which.ravel()


def _predict_blocks(model: TabularModel, blocks: Iterable[np.ndarray], names: pd.Index) -> Iterator[np.ndarray]:
    """Predictions of each block of featurized rows, stacking blocks up to `BATCH_ROWS` rows
    per prediction (a larger block is predicted alone)."""
    pending: list[np.ndarray] = []
    for block in blocks:
        if pending and sum(len(b) for b in pending) + len(block) > BATCH_ROWS:
            yield from _predict_stacked(model, pending, names)
            pending = []
        pending.append(block)
    if pending:
        yield from _predict_stacked(model, pending, names)


def _predict_stacked(model: TabularModel, blocks: list[np.ndarray], names: pd.Index) -> Iterator[np.ndarray]:
    """One prediction for the stacked blocks, split back per block."""
    stacked = np.concatenate(blocks)
    predicted = model.predict_featurized(pd.DataFrame(stacked, columns=names)) if len(stacked) else stacked[:, 0]
    yield from np.split(predicted, np.cumsum([len(block) for block in blocks])[:-1])


def importance_table(own: pd.Series | None, permutation: pd.DataFrame) -> pd.DataFrame:
    """Both importances per raw column, ranked by permutation importance."""
    table = permutation.rename(columns={"importance": "permutation", "std": "permutation_std"})
    table["model"] = table["feature"].map(own).round(6) if own is not None else np.nan
    return table[["feature", "permutation", "permutation_std", "model"]]
