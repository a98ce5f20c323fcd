"""reference: summarize what the monitor compares batches with, once per trained model.

Reads   models/model.zip, data/prepared/{train,test}.parquet (a folder of part files: a hashed
        sample of 1,000,000 rows)
Writes  models/reference.json (the drift reference: per feature of the training split, cleaned as
        incoming rows are, its quantiles or category counts; the training target's; the served
        model's scores on the test split, summarized the same way; the model file's sha256)
Params  seed (the hashed sample of a folder split)

A stage of its own, after train: train never reads the test split (its threshold and early stopping
see only validation rows), and the reference is versioned with the model it describes, so
`reprotab monitor --stage prod` reads kilobytes at the version's commit instead of its training rows.
The logic is reprotab/monitoring/reference.py.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

from reprotab import paths
from reprotab.data.tables import read_json
from reprotab.engine.partitions import read_split
from reprotab.model import served
from reprotab.model.schema import Schema
from reprotab.monitoring import reference
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main

PARAMS = ("seed",)
log = logging.getLogger(__name__)


@stage_main("reference")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Summarize the training split and the model's test scores.")
    parser.add_argument("--prepared", default=paths.PREPARED)
    parser.add_argument("--model", default=paths.MODEL)
    parser.add_argument("--out", default=paths.DRIFT_REFERENCE)
    args = parser.parse_args(argv)
    params = load_stage_params("reference", PARAMS)
    prepared, model_file = Path(args.prepared), Path(args.model)
    schema = Schema.from_dict(read_json(prepared / "schema.json"))
    model = served.load(model_file, where="--model")
    splits = {name: prepared / f"{name}.parquet" for name in ("train", "test")}
    rows = {
        name: read_split(
            path, sample_rows=reference.SAMPLE_ROWS, seed=params.seed, id_column=schema.id_column, where=str(path)
        )
        for name, path in splits.items()
    }
    built = reference.build(
        model,
        rows["train"],
        rows["test"],
        model_sha256=hashlib.sha256(model_file.read_bytes()).hexdigest(),
        origin=f"{splits['train']} and {splits['test']}",
    )
    reference.write(built, args.out)
    log.info(
        "drift reference of %d features from %d training rows and %d test scores in %s",
        len(built.features),
        built.rows,
        built.holdout_rows,
        args.out,
    )


if __name__ == "__main__":
    main()
