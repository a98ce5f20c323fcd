"""prepare: load the raw table (and the accepted batches), validate and clean it lightly, split it once.

Reads   data.path (CSV or Parquet); with data.batches.combine all/window also the batch files
        in data.batches.dir (all, or the last `window` by file name), appended below it.
        A folder data.path (or engine dask) is prepared in partitions by reprotab/engine/prepare.py:
        the splits are then folders of part files, and data/prepared/manifest.json lets the next
        run process only partitions it has not seen (data/prepared persists between runs)
Writes  data/prepared/{train,validation,test}.parquet, data/prepared/schema.json,
        reports/prepare/summary.json (rows and class balance per split, what cleaning did, and
        under `data` exactly which files trained the model: name, rows and SHA-256 of each)
Params  task, seed, data, prepare, engine and dask (where partitions are processed, part file rows)

The logic is reprotab/data/prepare.py; this shell wires files to it.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprotab import paths
from reprotab.data.prepare import SPLITS, choose_batches, combine_batches, prepare_with
from reprotab.data.tables import file_hash, read_table, write_json, write_table
from reprotab.engine.cluster import engine_client
from reprotab.engine.prepare import clear_partitioned, prepare_partitions
from reprotab.errors import UserError, problem
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main

PARAMS = ("task", "seed", "data", "prepare", "engine", "dask")
log = logging.getLogger(__name__)


@stage_main("prepare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Validate, clean and split the raw table.")
    parser.add_argument("--out-dir", default=paths.PREPARED)
    parser.add_argument("--summary", default=paths.PREPARE_SUMMARY)
    args = parser.parse_args(argv)
    params = load_stage_params("prepare", PARAMS)
    data, batches = params.data, params.data.batches
    out, engine, cluster = Path(args.out_dir), params.engine, params.dask
    if engine == "dask" or Path(data.path).is_dir():
        if batches.combine != "none":  # engine dask refuses it in validate; a folder with engine local here
            fix = "Put each batch in the data.path folder as a new partition and set data.batches.combine: none"
            raise UserError(
                problem("data.batches.combine", "adds files outside a folder data.path", batches.combine, fix)
            )
        with engine_client(engine, cluster) as client:
            schema, summary = prepare_partitions(params, out, client)
        write_json(schema.to_dict(), out / "schema.json")
        write_json(summary, args.summary)
        return
    folder = Path(batches.dir)
    if batches.combine != "none" and not folder.is_dir():
        fix = "Create it or set data.batches.combine: none"
        raise UserError(problem("data.batches.dir", "directory not found", batches.dir, fix))
    names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    chosen = choose_batches(names, combine=batches.combine, window=batches.window)
    reference = read_table(data.path)
    frames = {name: read_table(folder / name, where=f"data.batches.dir {name}") for name in chosen}
    frame = combine_batches(reference, frames)
    splits, schema, summary = prepare_with(frame, params, source_rows=[len(reference), *map(len, frames.values())])
    summary["data"] = {
        "reference": {"path": data.path, "rows": len(reference), "sha256": file_hash(data.path)},
        "combine": batches.combine,
        "batches": [{"name": n, "rows": len(f), "sha256": file_hash(folder / n)} for n, f in frames.items()],
        "batch_count": len(frames),  # numbers show in `dvc metrics diff reports/prepare/summary.json`
        "rows": len(frame),
    }
    clear_partitioned(out)  # only now: a failed run keeps every previous output (data/prepared persists)
    for name, part in splits.items():
        write_table(part, out / f"{name}.parquet")
    write_json(schema.to_dict(), out / "schema.json")
    write_json(summary, args.summary)
    log.info(
        "%d rows (%d batches), %d features (%d categorical); train/validation/test %s; train class share %s",
        len(frame),
        len(frames),
        len(schema.features),
        len(schema.categorical),
        "/".join(str(summary[s]["rows"]) for s in SPLITS),
        summary["train"].get("class_share") or "n/a",
    )


if __name__ == "__main__":
    main()
