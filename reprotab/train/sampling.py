"""Class balancing: the sampler registry, the `auto` decision, and categorical-aware SMOTE.

Samplers only ever see training rows: `balance` is called by train on the featurized training
split and by tune on each CV fold's training rows after that fold's featurizer is fitted, the
same order an `imblearn.pipeline.Pipeline` keeps (resample when fitting, never when
predicting). Held-out rows are never resampled, and the saved model has no sampler step at all.

Why a wrapper around the SMOTE family: samplers run on featurized rows, where a category is a
group of one-hot columns and a flag (boolean feature, missing-value indicator) is a 0/1 column.
Plain SMOTE would interpolate those into values no real row can have (0.4 of "fiber" and 0.6
of "dsl"). `CategoricalAwareSampler` collapses each one-hot group back to one category code and
treats 0/1 columns as categories, then:
- smote, smote_tomek, smote_enn use imblearn's SMOTENC (SMOTEN when every column is
  categorical): numbers are interpolated, each category is the most frequent among the
  neighbours, and the distance itself accounts for categories;
- adasyn and borderline_smote have no categorical variant, so they interpolate the numeric
  columns only, and each synthetic row takes the categories of its nearest real row of the
  same class;
and finally re-expands the codes into one-hot columns. Without categorical columns the plain
imblearn sampler runs unchanged. A target-encoded column (a high-cardinality category as its
mean target, reprotab/model/featurizer.py) is a number already and is interpolated like one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reprotab.errors import UserError, problem
from reprotab.params.sections import SamplingParams

log = logging.getLogger(__name__)
SMOTE_FAMILY = {"smote", "adasyn", "borderline_smote", "smote_tomek", "smote_enn"}


def _imblearn(module: str) -> Any:
    """An imbalanced-learn module, imported when a sampler is built (not when params load)."""
    import importlib

    return importlib.import_module(f"imblearn.{module}")


def _smote(config: SamplingParams, seed: int, categorical: list[int] | None, n_columns: int) -> Any:
    over_sampling = _imblearn("over_sampling")
    common = {"sampling_strategy": config.sampling_strategy, "random_state": seed, "k_neighbors": config.k_neighbors}
    if not categorical:
        return over_sampling.SMOTE(**common)
    if len(categorical) == n_columns:
        return over_sampling.SMOTEN(**common)
    return over_sampling.SMOTENC(categorical_features=categorical, **common)


# name → factory(config, seed, categorical column indices or None, number of columns)
SAMPLERS: dict[str, Callable[[SamplingParams, int, list[int] | None, int], Any] | None] = {
    "none": None,
    "random_over": lambda c, s, cat, n: _imblearn("over_sampling").RandomOverSampler(
        sampling_strategy=c.sampling_strategy, random_state=s
    ),
    "smote": _smote,
    "adasyn": lambda c, s, cat, n: _imblearn("over_sampling").ADASYN(
        sampling_strategy=c.sampling_strategy, random_state=s, n_neighbors=c.k_neighbors
    ),
    "borderline_smote": lambda c, s, cat, n: _imblearn("over_sampling").BorderlineSMOTE(
        sampling_strategy=c.sampling_strategy, random_state=s, k_neighbors=c.k_neighbors
    ),
    "random_under": lambda c, s, cat, n: _imblearn("under_sampling").RandomUnderSampler(
        sampling_strategy=c.sampling_strategy, random_state=s
    ),
    "smote_tomek": lambda c, s, cat, n: _imblearn("combine").SMOTETomek(
        smote=_smote(c, s, cat, n), random_state=s, sampling_strategy=c.sampling_strategy
    ),
    "smote_enn": lambda c, s, cat, n: _imblearn("combine").SMOTEENN(
        smote=_smote(c, s, cat, n), random_state=s, sampling_strategy=c.sampling_strategy
    ),
}
NUMERIC_ONLY = {"adasyn", "borderline_smote"}  # interpolate numbers; categories from the nearest real row


@dataclass(frozen=True)
class Decision:
    """What `auto` (or the user) chose, and why; recorded with the metrics."""

    sampler: str
    reason: str
    imbalance_ratio: float
    minority_share: float
    minority_count: int


def class_balance(y: np.ndarray) -> tuple[float, float, int]:
    """(majority/minority ratio, minority share, minority count) of a target."""
    _, counts = np.unique(y, return_counts=True)
    return float(counts.max() / counts.min()), float(counts.min() / counts.sum()), int(counts.min())


def resolve_sampler(*, sampler: str, task: str, y: np.ndarray, config: SamplingParams) -> Decision:
    """Resolve `auto` from the training target alone.

    Rule: regression → none. Otherwise with ratio = largest class / smallest class:
    ratio < `auto_min_ratio` → none (imbalance too small to be worth synthetic rows);
    smallest class ≤ `k_neighbors` rows → random_over (too few rows to interpolate between);
    else → smote (categorical-aware, see the module docstring).
    """
    if task == "regression":
        return Decision("none", "task is regression", 1.0, 1.0, len(y))
    ratio, share, count = class_balance(y)
    if sampler != "auto":
        return Decision(sampler, "chosen in params", ratio, share, count)
    if ratio < config.auto_min_ratio:
        reason = f"imbalance ratio {ratio:.1f} is below auto_min_ratio {config.auto_min_ratio}"
        return Decision("none", reason, ratio, share, count)
    if count <= config.k_neighbors:
        reason = f"imbalance ratio {ratio:.1f}, but the smallest class has only {count} rows (≤ k_neighbors)"
        return Decision("random_over", reason, ratio, share, count)
    reason = f"imbalance ratio {ratio:.1f} ≥ auto_min_ratio {config.auto_min_ratio}"
    return Decision("smote", reason, ratio, share, count)


def categorical_groups(columns: list[str], one_hot: dict[str, list[str]], frame: pd.DataFrame) -> list[list[int]]:
    """Column index groups that form one categorical value: each one-hot group, and each 0/1 column."""
    position = {name: i for i, name in enumerate(columns)}
    grouped = [[position[n] for n in names if n in position] for names in one_hot.values()]
    in_groups = {i for group in grouped for i in group}
    flags = [
        [position[c]]
        for c in columns
        if position[c] not in in_groups and frame[c].isin([0, 1]).all() and frame[c].nunique() == 2
    ]
    return [g for g in grouped if g] + flags


class CategoricalAwareSampler:
    """Run a registry sampler without inventing impossible category values (see module docstring).
    Stateless: each `fit_resample` builds its imbalanced-learn sampler afresh. Not a scikit-learn
    estimator, so importing this module (params/sections.py reads the registry's names) loads no
    scikit-learn: a stage that never resamples, such as tune without a search, does not pay for it."""

    def __init__(self, name: str, config: SamplingParams, seed: int, groups: list[list[int]]) -> None:
        self.name, self.config, self.seed, self.groups = name, config, seed, groups

    def fit_resample(self, X: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
        values = np.asarray(X, dtype=float)
        if not self.groups or self.name not in SMOTE_FAMILY:
            resampled, y_out = self._plain(values.shape[1]).fit_resample(values, y)
            return self._frame(resampled, columns), y_out
        numeric = [i for i in range(values.shape[1]) if not any(i in g for g in self.groups)]
        codes = np.column_stack([_codes(values[:, g]) for g in self.groups])
        if self.name in NUMERIC_ONLY:
            new_numeric, new_codes, y_out = self._numeric_then_nearest(values[:, numeric], codes, y)
        else:
            compact = np.column_stack([values[:, numeric], codes])
            categorical = list(range(len(numeric), compact.shape[1]))
            sampler = self._build()(self.config, self.seed, categorical, compact.shape[1])
            out, y_out = sampler.fit_resample(compact, y)
            new_numeric, new_codes = out[:, : len(numeric)], out[:, len(numeric) :]
        result = np.zeros((len(y_out), values.shape[1]))
        result[:, numeric] = new_numeric
        for k, group in enumerate(self.groups):
            result[:, group] = _expand(new_codes[:, k].astype(int), values[:, group])
        return self._frame(result, columns), y_out

    def _build(self) -> Callable[[SamplingParams, int, list[int] | None, int], Any]:
        build = SAMPLERS[self.name]
        assert build is not None, f"sampler {self.name} resamples nothing"  # `none` never builds a resampler
        return build

    def _plain(self, n_columns: int) -> Any:
        return self._build()(self.config, self.seed, None, n_columns)

    def _numeric_then_nearest(
        self, numeric: np.ndarray, codes: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from sklearn.neighbors import NearestNeighbors

        out, y_out = self._plain(numeric.shape[1]).fit_resample(numeric, y)
        new_codes = np.vstack([codes, np.zeros((len(out) - len(numeric), codes.shape[1]))])
        for label in np.unique(y_out[len(numeric) :]):
            real = np.flatnonzero(y == label)
            synthetic = len(numeric) + np.flatnonzero(y_out[len(numeric) :] == label)
            nearest = NearestNeighbors(n_neighbors=1).fit(numeric[real]).kneighbors(out[synthetic])[1][:, 0]
            new_codes[synthetic] = codes[real[nearest]]
        return out, new_codes, y_out

    @staticmethod
    def _frame(values: np.ndarray, columns: list[str] | None) -> Any:
        return pd.DataFrame(values, columns=columns) if columns is not None else values


def _codes(block: np.ndarray) -> np.ndarray:
    """One-hot block → category code; a single 0/1 column is its own code; all-zero rows → extra code."""
    if block.shape[1] == 1:
        return block[:, 0].round()
    return np.where(block.max(axis=1) > 0, block.argmax(axis=1), block.shape[1])


def _expand(codes: np.ndarray, original: np.ndarray) -> np.ndarray:
    if original.shape[1] == 1:
        return codes.reshape(-1, 1).astype(float)
    eye = np.vstack([np.eye(original.shape[1]), np.zeros((1, original.shape[1]))])
    return eye[codes]


def build_sampler(*, name: str, config: SamplingParams, seed: int, groups: list[list[int]]) -> Any:
    """The sampler for `resample` (train's rows, each tune fold's training rows), or None for `none`."""
    if name == "none":
        return None
    return CategoricalAwareSampler(name=name, config=config, seed=seed, groups=groups)


def check_feasible(*, decision: Decision, config: SamplingParams) -> None:
    """Neighbour-based samplers need more minority rows than neighbours: say so before fitting."""
    if decision.sampler in SMOTE_FAMILY and decision.minority_count <= config.k_neighbors:
        raise UserError(
            problem(
                "sampling.k_neighbors",
                f"must be below the smallest class's training rows for {decision.sampler}",
                f"k_neighbors {config.k_neighbors} with {decision.minority_count} rows",
                f"Set sampling.k_neighbors to at most {decision.minority_count - 1}, or use sampler: random_over",
            )
        )


def resample(sampler: Any, X: pd.DataFrame, y: np.ndarray, *, where: str = "sampler") -> tuple[Any, np.ndarray]:
    """fit_resample with imblearn's own complaints (impossible strategies) turned into user errors."""
    try:
        return sampler.fit_resample(X, y)
    except ValueError as exc:
        raise UserError(problem(where, f"cannot resample the training rows ({exc})")) from None


def balance(
    *,
    X: pd.DataFrame,
    y: np.ndarray,
    task: str,
    one_hot: dict[str, list[str]],
    sampler: str,
    config: SamplingParams,
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Resolve the sampler, resample the training rows, and say what happened (for the metrics)."""
    decision = resolve_sampler(sampler=sampler, task=task, y=y, config=config)
    check_feasible(decision=decision, config=config)
    built = build_sampler(
        name=decision.sampler, config=config, seed=seed, groups=categorical_groups(list(X.columns), one_hot, X)
    )
    X_out, y_out = (X, y) if built is None else resample(built, X, y)
    log.info(
        "sampler %s → %s (%s); training rows %d → %d", sampler, decision.sampler, decision.reason, len(y), len(y_out)
    )
    summary = {
        "sampler_used": decision.sampler,
        "sampler_reason": decision.reason,
        "imbalance_ratio": round(decision.imbalance_ratio, 3),
        "minority_share": round(decision.minority_share, 4),
        "training_rows": len(y),
        "training_rows_resampled": len(y_out),
    }
    return X_out, y_out, summary
