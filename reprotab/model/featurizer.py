"""The preprocessing that turns raw feature columns into model inputs.

Fitted by the train stage on the training split (and again on train + validation with
train.refit); tune builds the same transformer unfitted inside every CV fold. It stays one
module past 300 lines because older model pickles refer to its classes by module path: served
models hold the fitted transformer as a plan (reprotab/model/plan.py), but a format-2 pickle, which
`reprotab model convert` reads, names `to_float`, `to_float32`, `to_text`, `to_levels`,
`column_median`, `Cardinality`, `OneHotMatrix` and `FeatureMatrix` here (`to_float` and `to_text`
stay for pickles from before the featurizer produced one float32 matrix).

Numbers (and booleans as 0/1) are imputed, optionally flagged as missing and scaled. A
categorical column with at most `max_categories` distinct training values (missing counts as
one) is one-hot encoded with rare ones grouped into one "infrequent" column; a category never
seen in training maps to that group (or to all zeros). A column with more distinct values is
high-cardinality: with `high_cardinality: target` (the default) it becomes its category's
smoothed mean target (scikit-learn's TargetEncoder; one column per class for multiclass, the
global mean for unseen categories), with `one_hot` it is one-hot encoded like the others, the
levels beyond `max_categories` grouped as "infrequent". Which columns are high-cardinality is
decided from the rows each fit sees. Prediction never crashes on an unseen category.

Target encoding learns from the target, so fitting goes through `fit_featurizer`: the fitting
rows' own features come from `fit_transform`, which cross-fits (each row is encoded by folds
that did not see it, seeded), never from `fit(...).transform` on the same rows, which would
leak each row's own target into its feature. Every other row (validation, a CV fold's held-out
rows, test, serving) goes through `transform`, with encodings learnt on all fitting rows.

Output column names are safe for every estimator: LightGBM refuses JSON-special characters
(`"`, `,`, `:`, brackets, braces) and XGBoost `[`, `]`, `<`, so `safe_name` keeps letters, digits
and `_.-` and replaces anything else by `_`, adding a short hash of the original when it changed
anything so that two values differing only in such characters stay two columns. Names that are
already safe stay as they are. A target-encoded column keeps its (safe) column name, with
`_<class index>` per class for multiclass. The raw column behind each output name is known
(`encoded_groups`, reprotab/evaluate/importance.py `source_columns`), so reports use the user's names;
samplers get the one-hot groups only (`one_hot_groups`): a target-encoded column is a number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder

from reprotab.data.incoming import MISSING
from reprotab.model.schema import Schema, encode_target
from reprotab.params.sections import FeaturizeParams

TARGET_FOLDS = 5  # cross-fitting folds of the target encoder (scikit-learn's default)
ENCODE_ROWS = 100_000  # rows one-hot encoded at a time (OneHotMatrix)
# FeatureMatrix empties each part once copied only from this many rows: below it the memory is
# nothing and emptying a frame column by column is most of a served request's stacking time
FREE_PARTS_FROM = 10_000
UNSAFE = re.compile(r"[^\w.\-]")  # \w: letters (any script), digits, underscore


def safe_name(name: object) -> str:
    """`name` with every character outside letters, digits and `_.-` replaced by `_`, plus a hash
    of the original when anything was replaced (so distinct names stay distinct)."""
    text = str(name)
    cleaned = UNSAFE.sub("_", text)
    if cleaned == text:
        return text
    return f"{cleaned}_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"


def safe_feature_names(transformer: object, input_features: Iterable[object]) -> list[str]:
    """`feature_names_out` of the numeric columns: each input name made safe."""
    return [safe_name(name) for name in input_features]


def safe_one_hot_name(feature: object, category: object) -> str:
    """OneHotEncoder `feature_name_combiner`: `<column>_<category>`, made safe."""
    return safe_name(f"{feature}_{category}")


def _column_to_float(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=float, na_value=np.nan)  # numbers, booleans, nullable ones: no detour
    return pd.to_numeric(column.astype("object"), errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def to_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Booleans and nullable numbers to plain floats (NA → NaN) so the imputer sees one dtype;
    anything else is parsed as a number (unparseable → NaN). Kept for models pickled with it."""
    values = {column: _column_to_float(frame[column]) for column in frame.columns}
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def to_float32(frame: pd.DataFrame) -> pd.DataFrame:
    """`to_float` in float32, filled column by column into one block: the precision the tree
    models split in (forests and XGBoost convert to it; LightGBM bins the same values), at half
    the memory of every copy the imputer and the stacking make."""
    matrix = np.empty((len(frame), frame.shape[1]), dtype=np.float32)
    for k, column in enumerate(frame.columns):
        matrix[:, k] = _column_to_float(frame[column])
    return pd.DataFrame(matrix, index=frame.index, columns=frame.columns, copy=False)


def to_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as text with missing values as their own category. Kept for models pickled with it."""
    return frame.astype("object").where(frame.notna(), MISSING).astype(str).astype(object)


def _column_to_levels(column: pd.Series) -> pd.Series:
    if isinstance(column.dtype, pd.StringDtype):  # text already (Parquet's strings): no detour
        text = column.where(column.notna(), MISSING)
    else:
        text = column.astype("object").where(column.notna(), MISSING).astype(str)
    codes, levels = pd.factorize(text)
    return pd.Series(np.asarray(levels, dtype=object)[codes], index=column.index, dtype=object)


def to_levels(frame: pd.DataFrame) -> pd.DataFrame:
    """`to_text`'s values (the encoders see the same object arrays and find the same categories),
    built column by column with one string object per distinct value: `to_text` makes one per
    cell, tens of bytes each, and the encoders hash and sort every one of them."""
    values = {column: _column_to_levels(frame[column]) for column in frame.columns}
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def column_median(values: np.ndarray) -> float:
    """SimpleImputer's `median` strategy as a per-column callable (0 for a column without values, as
    keep_empty_features gives): the same value, the mean of the two middle ones in the column's
    dtype. The built-in strategy sorts the whole block at once with an int64 position per cell,
    several times the block's memory; the imputer calls this on one column's values at a time."""
    return float(np.median(values)) if len(values) else 0.0


IMPUTERS = {"median": column_median}  # strategies whose built-in version costs a copy of the block


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """Each value's rank among the column's sorted distinct values, and those values; None unless
    every value is a string (what `to_levels` gives), the only case `OneHotMatrix.fit` recodes."""
    codes, distinct = pd.factorize(values)
    if (codes < 0).any() or not all(isinstance(value, str) for value in distinct):
        return None
    order = sorted(range(len(distinct)), key=distinct.__getitem__)  # Python's string order, as sklearn sorts
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank[codes], np.asarray(distinct, dtype=object)[order]


class OneHotMatrix(OneHotEncoder):
    """OneHotEncoder whose dense output is filled `ENCODE_ROWS` rows at a time: the built-in encodes
    every row into a sparse matrix first (int64 codes and positions and a float64 one per cell) and
    then densifies it, about twice the output's size on top of it. Same fit, same values.

    `fit` learns from integer codes: with rare categories grouped (min_frequency, max_categories)
    the built-in counts text values one Python object at a time, 18 s for 8 columns of 800,000
    rows; on codes it counts with NumPy. The codes follow the categories' sorted order, so the
    fitted encoder, its category order and its infrequent groups are the built-in's, and the
    text categories are put back before it is used."""

    categories_: list[np.ndarray]  # fit's: each column's categories, in the built-in's order

    def fit(self, X: pd.DataFrame, y: object = None) -> OneHotMatrix:
        named_drop = self.drop is not None and not isinstance(self.drop, str)  # values to drop are text
        recodable = isinstance(X, pd.DataFrame) and self.categories == "auto" and not named_drop
        coded = [_sorted_codes(X[column]) for column in X.columns] if recodable else []
        recoded = [part for part in coded if part is not None]
        if not coded or len(recoded) < len(coded):
            return super().fit(X, y)
        super().fit(
            pd.DataFrame({column: codes for column, (codes, _) in zip(X.columns, recoded, strict=True)}, index=X.index)
        )
        self.categories_ = [levels[codes] for (_, levels), codes in zip(recoded, self.categories_, strict=True)]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        if self.sparse_output or len(X) <= ENCODE_ROWS:
            return super().transform(X)
        out = np.empty((len(X), len(self.get_feature_names_out())), dtype=self.dtype)
        for start in range(0, len(X), ENCODE_ROWS):
            block = super().transform(X.iloc[start : start + ENCODE_ROWS])
            out[start : start + ENCODE_ROWS] = block.to_numpy() if isinstance(block, pd.DataFrame) else block
        return out  # set_output wraps it in a DataFrame without copying


class FeatureMatrix(ColumnTransformer):
    """A ColumnTransformer whose output is one float32 matrix, each part's block copied into it as
    it comes. pandas' concatenation keeps a float64 part float64, and the estimators would then copy
    the mixed frame into one array again; one float32 block is what they take without a copy.

    The matrix is column-major (pandas' own layout, which LightGBM reads in place), so copying a
    part touches only that part's columns, and each part's frame is emptied once copied:
    ColumnTransformer holds every part until the stacking returns, which would otherwise keep
    the parts and the matrix, two copies of the features, alive together."""

    def _hstack(self, Xs: list, *, n_samples: int) -> np.ndarray:
        matrix = np.empty((n_samples, sum(X.shape[1] for X in Xs)), dtype=np.float32, order="F")
        start = 0
        for X in Xs:
            width = X.shape[1]
            matrix[:, start : start + width] = X.to_numpy() if isinstance(X, pd.DataFrame) else X
            start += width
            if isinstance(X, pd.DataFrame) and n_samples >= FREE_PARTS_FROM:  # its memory goes now
                for column in list(X.columns):
                    del X[column]
        return matrix  # set_output wraps it in a DataFrame without copying


@dataclass(frozen=True)
class Cardinality:
    """A ColumnTransformer column selector: of `columns`, those with more than `max_categories`
    distinct values (missing counts as one) when `high`, the others when not. ColumnTransformer
    calls it when fitting and keeps the resulting lists, so transform never re-decides."""

    columns: tuple[str, ...]
    max_categories: int
    high: bool

    def __call__(self, frame: pd.DataFrame) -> list[str]:
        text = to_levels(frame[list(self.columns)])
        return [c for c in self.columns if (text[c].nunique() > self.max_categories) == self.high]


def _target_encoder(schema: Schema, seed: int) -> TargetEncoder:
    """Targets are encoded (class indices, or floats for regression), so the type comes from the
    schema, not guessed from values (a regression target of whole numbers is not multiclass)."""
    if schema.task == "regression":
        return TargetEncoder(target_type="continuous", cv=KFold(TARGET_FOLDS, shuffle=True, random_state=seed))
    kind = "binary" if len(schema.classes) == 2 else "multiclass"
    return TargetEncoder(target_type=kind, cv=StratifiedKFold(TARGET_FOLDS, shuffle=True, random_state=seed))


def build_featurizer(*, schema: Schema, config: FeaturizeParams, seed: int = 0) -> ColumnTransformer:
    """An unfitted transformer for the schema's features; fit it with `fit_featurizer` (target
    encoding needs the target and cross-fitting). `seed` shuffles the cross-fitting folds. Its
    output is one float32 frame (`FeatureMatrix`)."""
    numeric = [
        ("to_float", FunctionTransformer(to_float32, feature_names_out=safe_feature_names)),
        (
            "impute",
            SimpleImputer(
                strategy=IMPUTERS.get(config.numeric_imputer, config.numeric_imputer),
                add_indicator=config.missing_indicators,
                keep_empty_features=True,
                copy=False,  # imputes to_float32's fresh matrix in place, never the caller's rows
            ),
        ),
    ]
    if config.scale:
        numeric.append(("scale", StandardScaler()))
    categorical = [
        ("to_text", FunctionTransformer(to_levels, feature_names_out="one-to-one")),
        (
            "encode",
            OneHotMatrix(
                handle_unknown="infrequent_if_exist",
                sparse_output=False,
                min_frequency=config.rare_category_min_share or None,
                max_categories=config.max_categories,
                dtype=np.float32,
                feature_name_combiner=safe_one_hot_name,
            ),
        ),
    ]
    parts: list[tuple[str, Pipeline, list[str] | Cardinality]] = [("numeric", Pipeline(numeric), list(schema.numeric))]
    if config.high_cardinality == "target" and schema.categorical:
        target = [
            ("to_text", FunctionTransformer(to_levels, feature_names_out=safe_feature_names)),
            ("encode", _target_encoder(schema, seed)),
        ]
        columns, limit = tuple(schema.categorical), config.max_categories
        parts += [
            ("categorical", Pipeline(categorical), Cardinality(columns, limit, high=False)),
            ("target", Pipeline(target), Cardinality(columns, limit, high=True)),
        ]
    else:
        parts.append(("categorical", Pipeline(categorical), list(schema.categorical)))
    transformer = FeatureMatrix(parts, remainder="drop", verbose_feature_names_out=False)
    return transformer.set_output(transform="pandas")


def fit_featurizer(
    rows: pd.DataFrame, *, schema: Schema, config: FeaturizeParams, seed: int = 0
) -> tuple[ColumnTransformer, pd.DataFrame]:
    """A featurizer fitted on `rows` (features and target) and those rows' features, from
    fit_transform: their target-encoded columns are cross-fitted (see the module docstring)."""
    featurizer = build_featurizer(schema=schema, config=config, seed=seed)
    features = featurizer.fit_transform(rows[list(schema.features)], encode_target(rows[schema.target], schema))
    return featurizer, features


def _fitted_columns(featurizer: ColumnTransformer, name: str) -> list[str]:
    """The raw columns a fitted part of the featurizer took ([] when absent, as in models from
    before target encoding, or when no column fell to it)."""
    return next((list(columns) for part, _, columns in featurizer.transformers_ if part == name), [])


def one_hot_groups(featurizer: ColumnTransformer) -> dict[str, list[str]]:
    """Output column names of each one-hot encoded input column, so samplers can treat a one-hot
    group as one categorical value (target-encoded columns are numbers, not listed)."""
    if not _fitted_columns(featurizer, "categorical"):
        return {}
    encoder = featurizer.named_transformers_["categorical"].named_steps["encode"]
    names = list(encoder.get_feature_names_out())
    groups, start = {}, 0
    infrequent = getattr(encoder, "infrequent_categories_", [None] * len(encoder.categories_))
    for column, categories, rare in zip(encoder.feature_names_in_, encoder.categories_, infrequent, strict=True):
        width = len(categories) - (len(rare) - 1 if rare is not None else 0)
        groups[str(column)], start = names[start : start + width], start + width
    assert start == len(names), "one-hot widths do not add up to the encoder's output"
    return groups


def encoded_groups(featurizer: ColumnTransformer) -> dict[str, list[str]]:
    """Output column names of each categorical input column, one-hot or target-encoded, so
    reports can fold them back into the user's column."""
    groups = one_hot_groups(featurizer)
    columns = _fitted_columns(featurizer, "target")
    if columns:
        encoder = featurizer.named_transformers_["target"].named_steps["encode"]
        names = list(encoder.get_feature_names_out())
        width = len(encoder.classes_) if encoder.target_type_ == "multiclass" else 1
        assert width * len(columns) == len(names), "target-encoded widths do not add up to the encoder's output"
        for k, column in enumerate(columns):
            groups[str(column)] = names[k * width : (k + 1) * width]
    return groups


def featurize(
    *, train: pd.DataFrame, validation: pd.DataFrame, schema: Schema, config: FeaturizeParams, seed: int = 0
) -> tuple[ColumnTransformer, pd.DataFrame, pd.DataFrame]:
    """Fit on train (its own features cross-fitted), transform validation; the target column is
    carried over unchanged. The test split is never passed here: only evaluate touches it."""
    featurizer, train_features = fit_featurizer(train, schema=schema, config=config, seed=seed)
    validation_features = featurizer.transform(validation[list(schema.features)])
    for features, part in ((train_features, train), (validation_features, validation)):
        features[schema.target] = part[schema.target].to_numpy()
    return featurizer, train_features, validation_features
