"""prepare: load the raw table, validate and clean it lightly, split it once.

Reads   data.path (CSV or Parquet)
Writes  data/prepared/{train,validation,test}.parquet, data/prepared/schema.json,
        reports/prepare/summary.json (rows and class balance per split, what cleaning did)
Params  task, seed, data, prepare

The logic is reprotab/prepare.py; this shell wires files to it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprotab.data import read_table, write_json, write_table
from reprotab.params import load_stage_params
from reprotab.prepare import SPLITS, prepare_with
from reprotab.runner import stage_main

PARAMS = ("task", "seed", "data", "prepare")
log = logging.getLogger(__name__)


@stage_main("prepare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate, clean and split the raw table.")
    parser.add_argument("--out-dir", default="data/prepared")
    parser.add_argument("--summary", default="reports/prepare/summary.json")
    args = parser.parse_args(argv)
    params = load_stage_params("prepare", PARAMS)
    frame = read_table(params.data.path)
    splits, schema, summary = prepare_with(frame, params)
    params.record_reads()
    out = Path(args.out_dir)
    for name, part in splits.items():
        write_table(part, out / f"{name}.parquet")
    write_json(schema.to_dict(), out / "schema.json")
    write_json(summary, args.summary)
    log.info(
        "%d rows, %d features (%d categorical); train/validation/test %s; train class share %s",
        len(frame),
        len(schema.features),
        len(schema.categorical),
        "/".join(str(summary[s]["rows"]) for s in SPLITS),
        summary["train"].get("class_share") or "n/a",
    )


if __name__ == "__main__":
    main()
