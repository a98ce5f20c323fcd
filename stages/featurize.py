"""featurize: fit the preprocessing on the training split only and transform train and validation.

Reads   data/prepared/{train,validation}.parquet, data/prepared/schema.json
Writes  data/features/featurizer.joblib (fitted), data/features/{train,validation}.parquet
Params  featurize

What the featurizer does is in stages/preprocessing.py. The test split is not read here:
only evaluate touches it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer

from stages.data import atomic_path, read_json, write_table
from stages.params import FeaturizeParams, load_stage_params
from stages.preprocessing import build_featurizer
from stages.runner import stage_main
from stages.schema import Schema

PARAMS = ("featurize",)
log = logging.getLogger(__name__)


def featurize(
    *, train: pd.DataFrame, validation: pd.DataFrame, schema: Schema, config: FeaturizeParams
) -> tuple[ColumnTransformer, pd.DataFrame, pd.DataFrame]:
    """Fit on train, transform both splits; the target column is carried over unchanged."""
    featurizer = build_featurizer(schema=schema, config=config).fit(train[list(schema.features)])
    outputs = []
    for part in (train, validation):
        features = featurizer.transform(part[list(schema.features)])
        features[schema.target] = part[schema.target].to_numpy()
        outputs.append(features)
    return featurizer, outputs[0], outputs[1]


@stage_main("featurize")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fit the preprocessing on train; transform train and validation.")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out-dir", default="data/features")
    args = parser.parse_args(argv)
    params = load_stage_params("featurize", PARAMS)
    prepared = Path(args.prepared)
    schema = Schema.from_dict(read_json(prepared / "schema.json"))
    featurizer, train, validation = featurize(
        train=pd.read_parquet(prepared / "train.parquet"),
        validation=pd.read_parquet(prepared / "validation.parquet"),
        schema=schema,
        config=params.featurize,
    )
    params.record_reads()
    out = Path(args.out_dir)
    with atomic_path(out / "featurizer.joblib") as tmp:
        joblib.dump(featurizer, tmp)
    write_table(train, out / "train.parquet")
    write_table(validation, out / "validation.parquet")
    log.info(
        "%d raw features → %d model features on %d training rows", len(schema.features), train.shape[1] - 1, len(train)
    )


if __name__ == "__main__":
    main()
