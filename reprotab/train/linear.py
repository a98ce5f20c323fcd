"""The linear family: regularised logistic regression and ridge regression on standardised features.

For tables whose signal is close to linear a tree ensemble approximates a plane with steps and
loses to a plain linear model; a linear fit costs milliseconds, so `model: auto` and the ensemble
can always try it. The featurizer's output (one-hot groups, target encodings, missing flags,
imputed numbers) is standardised inside the estimator, whatever `featurize.scale` says, so the
one `alpha` means the same on every column and the stored model is four arrays: `mean_`,
`scale_`, `coef_` and `intercept_` (reprotab/model/boosters.py `LinearBooster`).

`alpha` is the regularisation strength for both tasks (ridge's alpha; logistic regression's
C = 1 / alpha), so one search space covers classification and regression.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils._param_validation import Interval, StrOptions

STANDARD_CLIP = 10.0  # standardised values are clipped to ± this: one outlier at serving time cannot dominate


class _Linear(BaseEstimator):
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, alpha: float = 1.0, max_iter: int = 1000, random_state: Any = None) -> None:
        self.alpha, self.max_iter, self.random_state = alpha, max_iter, random_state

    def _standardise_fit(self, X: Any, sample_weight: Any) -> np.ndarray:
        matrix = np.asarray(X, dtype=np.float64)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        mean = np.average(matrix, axis=0, weights=weights)
        spread = np.sqrt(np.average((matrix - mean) ** 2, axis=0, weights=weights))
        self.mean_, self.scale_ = mean, np.where(spread > 1e-12, spread, 1.0)
        self.n_features_in_ = matrix.shape[1]
        return self.standardise(matrix)

    def standardise(self, X: Any) -> np.ndarray:
        return np.clip((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_, -STANDARD_CLIP, STANDARD_CLIP)

    def decision_function(self, X: Any) -> np.ndarray:
        """The linear scores: one column per class for multiclass, one for binary and regression."""
        return self.standardise(X) @ self.coef_.T + self.intercept_

    @property
    def feature_importances_(self) -> np.ndarray:
        """|coefficient| on the standardised scale, summed over classes, as a share of the total."""
        weight = np.abs(self.coef_).sum(axis=0)
        total = weight.sum()
        return weight / total if total > 0 else weight


class LinearClassifier(ClassifierMixin, _Linear):
    """Logistic regression (L2, lbfgs) on standardised features."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_Linear._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(
        self, alpha: float = 1.0, max_iter: int = 1000, class_weight: Any = None, random_state: Any = None
    ) -> None:
        super().__init__(alpha=alpha, max_iter=max_iter, random_state=random_state)
        self.class_weight = class_weight

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearClassifier:
        self._validate_params()
        standard = self._standardise_fit(X, sample_weight)
        inner = LogisticRegression(
            C=1.0 / self.alpha, max_iter=self.max_iter, class_weight=self.class_weight, random_state=self.random_state
        )
        inner.fit(standard, y, sample_weight=sample_weight)
        self.classes_, self.coef_, self.intercept_ = inner.classes_, inner.coef_, inner.intercept_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return probabilities(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class LinearRegressor(RegressorMixin, _Linear):
    """Ridge regression on standardised features."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        self._validate_params()
        standard = self._standardise_fit(X, sample_weight)
        inner = Ridge(alpha=self.alpha, max_iter=self.max_iter, random_state=self.random_state)
        inner.fit(standard, np.asarray(y, dtype=np.float64), sample_weight=sample_weight)
        self.coef_ = np.atleast_2d(inner.coef_)
        self.intercept_ = np.atleast_1d(np.asarray(inner.intercept_, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.decision_function(X)[:, 0]


def probabilities(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from linear scores: the sigmoid of one column (binary), else the softmax."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:
        positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.column_stack((1.0 - positive, positive))
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
