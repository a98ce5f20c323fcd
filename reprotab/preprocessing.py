"""The preprocessing that turns raw feature columns into model inputs.

The core of the featurize stage; tune builds the same transformer unfitted inside every CV
fold. The fitted transformer is pickled inside the served model, and pickles refer to
functions by module, so `to_float` and `to_text` must keep their module path
(see reprotab/served.py on format versions).

Numbers (and booleans as 0/1) are imputed, optionally flagged as missing and scaled;
categories are one-hot encoded with rare ones grouped into one "infrequent" column. A category
never seen in training maps to that group (or to all zeros), so prediction never crashes on it.

Output column names are safe for every estimator: LightGBM refuses JSON-special characters
(`"`, `,`, `:`, brackets, braces) and XGBoost `[`, `]`, `<`, so `safe_name` keeps letters, digits
and `_.-` and replaces anything else by `_`, adding a short hash of the original when it changed
anything so that two values differing only in such characters stay two columns. Names that are
already safe stay as they are. The raw column behind each output name is known
(`one_hot_groups`, reprotab/importance.py `source_columns`), so reports use the user's names.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from reprotab.params import FeaturizeParams
from reprotab.schema import Schema

MISSING = "__missing__"
UNSAFE = re.compile(r"[^\w.\-]")  # \w: letters (any script), digits, underscore


def safe_name(name: object) -> str:
    """`name` with every character outside letters, digits and `_.-` replaced by `_`, plus a hash
    of the original when anything was replaced (so distinct names stay distinct)."""
    text = str(name)
    cleaned = UNSAFE.sub("_", text)
    if cleaned == text:
        return text
    return f"{cleaned}_{hashlib.sha1(text.encode('utf-8')).hexdigest()[:6]}"


def safe_feature_names(transformer: object, input_features: object) -> list[str]:
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
    anything else is parsed as a number (unparseable → NaN)."""
    values = {column: _column_to_float(frame[column]) for column in frame.columns}
    return pd.DataFrame(values, index=frame.index, columns=frame.columns)


def to_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as text with missing values as their own category."""
    return frame.astype("object").where(frame.notna(), MISSING).astype(str).astype(object)


def build_featurizer(*, schema: Schema, config: FeaturizeParams) -> ColumnTransformer:
    """An unfitted transformer for the schema's features; fitted on training rows by the caller."""
    numeric = [
        ("to_float", FunctionTransformer(to_float, feature_names_out=safe_feature_names)),
        (
            "impute",
            SimpleImputer(
                strategy=config.numeric_imputer, add_indicator=config.missing_indicators, keep_empty_features=True
            ),
        ),
    ]
    if config.scale:
        numeric.append(("scale", StandardScaler()))
    categorical = [
        ("to_text", FunctionTransformer(to_text, feature_names_out="one-to-one")),
        (
            "encode",
            OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                sparse_output=False,
                min_frequency=config.rare_category_min_share or None,
                max_categories=config.max_categories,
                dtype=np.float32,
                feature_name_combiner=safe_one_hot_name,
            ),
        ),
    ]
    transformer = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric), list(schema.numeric)),
            ("categorical", Pipeline(categorical), list(schema.categorical)),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    return transformer.set_output(transform="pandas")


def one_hot_groups(featurizer: ColumnTransformer) -> dict[str, list[str]]:
    """Output column names of each categorical input column, so samplers can treat a one-hot
    group as one categorical value."""
    if "categorical" not in featurizer.named_transformers_ or not featurizer.transformers_[1][2]:
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


def featurize(
    *, train: pd.DataFrame, validation: pd.DataFrame, schema: Schema, config: FeaturizeParams
) -> tuple[ColumnTransformer, pd.DataFrame, pd.DataFrame]:
    """Fit on train, transform both splits; the target column is carried over unchanged.
    The test split is never passed here: only evaluate touches it."""
    featurizer = build_featurizer(schema=schema, config=config).fit(train[list(schema.features)])
    outputs = []
    for part in (train, validation):
        features = featurizer.transform(part[list(schema.features)])
        features[schema.target] = part[schema.target].to_numpy()
        outputs.append(features)
    return featurizer, outputs[0], outputs[1]
