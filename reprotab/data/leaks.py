"""Single-column target leak check: can one column alone predict the target almost perfectly?

A column that does (a refund date for churn, a post-outcome status) makes a model look great in
evaluation and useless in production, because the value is only known after the outcome. The
check scores each column on its own with out-of-fold predictions (3 folds, seeded):
- numbers: a depth-limited decision tree (missing values go to their own side of each split;
  ±inf counts as missing, as prepare makes it);
- categories: each category's target rate (class shares, or the mean for regression) learned on
  the other folds; a category not seen there gets the overall rate.
The score is ROC-AUC (classification; one-vs-rest macro average for multiclass) or R²
(regression). A score at or above `LEAK_SCORE` flags the column. ID-like columns score low here
(every value is new in the held-out fold), so they are flagged separately by the profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

LEAK_SCORE = 0.98
FOLDS = 3
TREE_DEPTH = 6


def leak_scores(frame: pd.DataFrame, *, target: str, task: str, columns: list[str], seed: int) -> dict[str, float]:
    """column → out-of-fold score of that column alone (ROC-AUC or R²); rows without a target are left out.
    Columns that cannot be scored (empty, a single value) are omitted."""
    frame = frame[frame[target].notna()]
    if len(frame) < 2 * FOLDS:
        return {}
    if task == "classification":
        codes, classes = pd.factorize(frame[target], sort=True)
        y = codes.astype(int)
        if len(classes) < 2:
            return {}
        smallest = np.bincount(y).min()
        splitter = StratifiedKFold if smallest >= FOLDS else KFold
    else:
        y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=float)
        frame, y = frame[~np.isnan(y)], y[~np.isnan(y)]
        classes, splitter = None, KFold
        if len(y) < 2 * FOLDS:
            return {}
    folds = list(splitter(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    scores = {}
    for column in columns:
        values = frame[column]
        if values.nunique(dropna=True) < 2:
            continue
        predicted = _out_of_fold(values, y, folds, n_classes=None if classes is None else len(classes), seed=seed)
        scores[column] = _score(y, predicted, classes)
    return scores


def _out_of_fold(
    values: pd.Series,
    y: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    n_classes: int | None,
    seed: int,
) -> np.ndarray:
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    out = np.zeros((len(y), n_classes)) if n_classes else np.zeros(len(y))
    for train, held in folds:
        if numeric:
            x = values.to_numpy(dtype=float, na_value=np.nan).reshape(-1, 1)
            x = np.where(np.isinf(x), np.nan, x)  # the tree refuses infinity; prepare makes it missing too
            out[held] = _tree_predict(x[train], y[train], x[held], n_classes=n_classes, seed=seed)
        else:
            keys = values.astype("string").fillna("\x00missing")
            out[held] = _rate_predict(keys.iloc[train], y[train], keys.iloc[held], n_classes=n_classes)
    return out


def _tree_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_held: np.ndarray, *, n_classes: int | None, seed: int
) -> np.ndarray:
    if n_classes is None:
        tree = DecisionTreeRegressor(max_depth=TREE_DEPTH, min_samples_leaf=5, random_state=seed)
        return tree.fit(x_train, y_train).predict(x_held)
    tree = DecisionTreeClassifier(max_depth=TREE_DEPTH, min_samples_leaf=5, random_state=seed)
    tree.fit(x_train, y_train)
    proba = np.zeros((len(x_held), n_classes))
    proba[:, tree.classes_] = tree.predict_proba(x_held)
    return proba


def _rate_predict(
    keys_train: pd.Series, y_train: np.ndarray, keys_held: pd.Series, *, n_classes: int | None
) -> np.ndarray:
    if n_classes is None:
        means = pd.Series(y_train, index=keys_train.index).groupby(keys_train.to_numpy()).mean()
        return keys_held.map(means).fillna(float(np.mean(y_train))).to_numpy(dtype=float)
    onehot = np.eye(n_classes)[y_train]
    rates = pd.DataFrame(onehot).groupby(keys_train.to_numpy()).mean()
    prior = onehot.mean(axis=0)
    held = rates.reindex(keys_held.to_numpy()).to_numpy()
    return np.where(np.isnan(held), prior, held)


def _score(y: np.ndarray, predicted: np.ndarray, classes: pd.Index | None) -> float:
    if classes is None:
        return float(r2_score(y, predicted))
    if len(classes) == 2:
        return float(roc_auc_score(y, predicted[:, 1]))
    return float(roc_auc_score(y, predicted, multi_class="ovr", labels=list(range(len(classes)))))
