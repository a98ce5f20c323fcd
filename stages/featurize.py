"""featurize: fit the preprocessing on the training split only and transform train and validation.

Reads   data/prepared/{train,validation}.parquet, data/prepared/schema.json
Writes  data/features/featurizer.joblib (fitted), data/features/{train,validation}.parquet
Params  featurize, seed (the target encoder's cross-fitting folds)

What the featurizer does is in reprotab/model/featurizer.py. The test split is not read here:
only evaluate touches it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import joblib

from reprotab.data.tables import atomic_path, read_json, read_parquet, write_table
from reprotab.model.featurizer import featurize
from reprotab.model.schema import Schema
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main

PARAMS = ("featurize", "seed")
log = logging.getLogger(__name__)


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
        train=read_parquet(prepared / "train.parquet"),
        validation=read_parquet(prepared / "validation.parquet"),
        schema=schema,
        config=params.featurize,
        seed=params.seed,
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
