"""`reprotab predict`: score a CSV or Parquet file of any size with the served model.

    reprotab predict --input data/incoming/batch.parquet --output reports/scored.parquet
                     [--model models/model.zip | --stage prod | --version v3] [--chunk-rows 50000]
    reprotab predict --input data/incoming/ --output reports/scored/ [--workers 2 | --scheduler tcp://...]

A folder --input (a table in partitions, e.g. one file per day) is scored partition by partition
into a folder of the same layout, in this process or on a Dask cluster, only partitions not scored
before by the same model being read (reprotab/engine/scoring.py).

Reads the input in chunks (pyarrow), so a file larger than memory works, and writes one
file, Parquet (--output ending .parquet or .pq) or CSV (ending .csv), with, per row: the id
column (or `row`, the 0-based row number, when the model has no id column or the input lacks
it), `prediction`, `proba_<class>` for each class (classification), `threshold` (the binary
decision threshold, else null) and `model_version`.
The output appears atomically (temp file + rename): a failure or Ctrl-C leaves no half file and
keeps a previous output. Rows the model cannot score are left out of it and listed in
`<output>.errors.csv` (row, id, error) instead of failing the batch. An output that is a
directory or has another suffix is refused before the model is loaded or a row is read.

Memory: about --chunk-rows rows of work at a time, but pyarrow decodes a Parquet file one row
group at a time, so a file written as one huge row group (pandas/pyarrow write up to 1Mi rows
per group) is held whole while it is read; write big inputs with smaller row groups.

Input checks: missing feature columns fail before anything is scored (with did-you-mean);
extra columns are ignored with one note; values are cleaned by the one policy for incoming rows
(reprotab/data/incoming.py: text and ±inf in a numeric column become missing, each chunk refused when
a numeric column is mostly text), with one warning per column changed. CSV columns are read as
text and cleaned the same way, so a later block of a big file cannot change a column's type half-way.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from reprotab.data.incoming import clean_incoming, log_notes, merge_notes, require_features
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem
from reprotab.model.served import TabularModel
from reprotab.runner import stage_main
from reprotab.serving.scoring import add_model_arguments, proba_columns, resolve_model, score

log = logging.getLogger(__name__)
FORMATS = (".csv", ".parquet", ".pq")
OUTPUT_FORMATS = (".parquet", ".pq", ".csv")


def check_output(output: str | Path) -> Path:
    """`output` if predictions can be written there: a file path ending .parquet, .pq or .csv
    that is not a directory; checked before any work, so a bad one costs nothing."""
    output = Path(output)
    if output.is_dir():
        raise UserError(problem("--output", "is a directory", str(output), "Name a file in it, e.g. scored.parquet"))
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UserError(problem("--output", "must end in .parquet, .pq or .csv (the format written)", str(output)))
    return output


def _writer(path: Path, schema: pa.Schema, *, csv: bool) -> Any:
    return pacsv.CSVWriter(path, schema) if csv else pq.ParquetWriter(path, schema)


def errors_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".errors.csv")


def open_input(
    path: Path, *, block_bytes: int
) -> tuple[list[str], Callable[[str], pa.DataType], int | None, Callable[[list[str], int], Iterator[pa.RecordBatch]]]:
    """Column names, the id type reader, row count (Parquet) and a function(columns) → batches."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(problem("--input", "must be a .csv or .parquet file", str(path)))
    if not path.is_file():
        raise UserError(problem("--input", "file not found", str(path)))
    try:
        if suffix == ".csv":
            names = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=block_bytes)).schema.names

            def batches(columns: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
                convert = pacsv.ConvertOptions(
                    include_columns=columns, column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=True
                )
                yield from pacsv.open_csv(
                    path, read_options=pacsv.ReadOptions(block_size=block_bytes), convert_options=convert
                )

            return names, lambda name: pa.string(), None, batches
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(problem("--input", f"cannot be read ({exc})", str(path))) from None
    arrow = parquet.schema_arrow

    def parquet_batches(columns: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
        yield from parquet.iter_batches(batch_size=chunk_rows, columns=columns)

    return arrow.names, lambda name: arrow.field(name).type, parquet.metadata.num_rows, parquet_batches


def rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of exactly `rows` rows (the last one shorter) from batches of any size."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)


def output_schema(model: TabularModel, id_name: str, id_type: pa.DataType) -> pa.Schema:
    schema = model.schema
    prediction = pa.array(list(schema.classes)).type if schema.task == "classification" else pa.float64()
    fields = [pa.field(id_name, id_type), pa.field("prediction", prediction)]
    fields += [pa.field(name, pa.float64()) for name in proba_columns(schema)]
    return pa.schema([*fields, pa.field("threshold", pa.float64()), pa.field("model_version", pa.string())])


def predict_file(
    model: TabularModel,
    *,
    version: str,
    input: str | Path,
    output: str | Path,
    chunk_rows: int = 50_000,
    block_bytes: int = 1 << 22,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score `input` into `output` (Parquet, or CSV for a .csv name) chunk by chunk; returns rows
    read, scored, failed."""
    if chunk_rows < 1:
        raise UserError(problem("--chunk-rows", "must be at least 1", chunk_rows))
    input, output = Path(input), check_output(output)
    if input.resolve() == output.resolve():
        raise UserError(problem("--output", "must not be the input file", str(output)))
    names, type_of, total, batches = open_input(input, block_bytes=block_bytes)
    where = f"--input {input}"
    extra = require_features(names, model.schema, where=where)
    if extra:
        log.info("ignoring %d column(s) the model does not use: %s", len(extra), ", ".join(extra))
    id_column = model.schema.id_column if model.schema.id_column in names else None
    columns = [*model.schema.features, *([id_column] if id_column else [])]
    schema = output_schema(model, id_column or "row", type_of(id_column) if id_column else pa.int64())
    threshold, probas = model.decision_threshold, proba_columns(model.schema)
    failed: list[dict[str, Any]] = []
    notes: dict[str, Any] = {}
    seen = scored = 0
    from tqdm import tqdm

    bar = tqdm(total=total, unit="rows", disable=not sys.stderr.isatty() if progress is None else not progress)
    try:
        with atomic_path(output) as tmp, _writer(tmp, schema, csv=output.suffix.lower() == ".csv") as writer:
            try:
                for table in rechunk(batches(columns, chunk_rows), chunk_rows):
                    rows = table.to_pandas()
                    ids = rows[id_column].to_numpy() if id_column else np.arange(seen, seen + len(rows))
                    cleaned = clean_incoming(rows, model.schema, featurizer=model.plan, where=where)
                    notes = merge_notes(notes, cleaned.notes)
                    with np.errstate(over="ignore", invalid="ignore"):  # bisecting rows too large for float32
                        result = score(model, cleaned.frame)
                    out = pd.DataFrame({schema.names[0]: ids[result.index], "prediction": result.predictions})
                    if probas:
                        proba = result.proba
                        assert proba is not None  # probas are a classifier's, and score gives a classifier's
                        for i, name in enumerate(probas):
                            out[name] = proba[:, i]
                    out["threshold"], out["model_version"] = threshold, version
                    writer.write_table(pa.Table.from_pandas(out, schema=schema, preserve_index=False))
                    failed += [{"row": seen + i, "id": ids[i], "error": why} for i, why in result.failed]
                    seen, scored = seen + len(rows), scored + len(result.index)
                    bar.update(len(rows))
            except pa.ArrowException as exc:
                raise UserError(
                    problem(f"--input {input}", f"cannot be read after row {seen} ({exc})", None, "Nothing was written")
                ) from None
            writer.close()
            _write_errors(failed, output)
    finally:
        bar.close()
    log_notes(notes, where=where)
    if failed:
        log.warning("%d row(s) could not be scored; listed in %s", len(failed), errors_path(output))
    return {"rows": seen, "scored": scored, "failed": len(failed)}


def check_folder_output(output: str | Path) -> Path:
    """A folder --input writes a folder of the same layout: `output` may not be a file."""
    output = Path(output)
    if output.is_file() or output.suffix.lower() in OUTPUT_FORMATS:
        fix = "Name a folder, e.g. reports/scored"
        raise UserError(problem("--output", "must be a folder when --input is one", str(output), fix))
    return output


def _predict_folder(model: TabularModel, version: str, args: argparse.Namespace) -> dict[str, Any]:
    """A folder of partitions: each one scored as a file (reprotab/engine/scoring.py), new ones only."""
    from reprotab.engine.cluster import engine_client
    from reprotab.engine.scoring import predict_folder
    from reprotab.params.sections import DaskParams

    dask = args.workers > 0 or args.scheduler
    settings = DaskParams(address=args.scheduler, n_workers=max(args.workers, 1))
    with engine_client("dask" if dask else "local", settings) as client:
        summary = predict_folder(
            model, version=version, input=args.input, output=args.output, chunk_rows=args.chunk_rows, client=client
        )
    log.info(
        "%d partitions: %d scored, %d reused (unchanged, same model)",
        *(summary[k] for k in ("partitions", "processed", "reused")),
    )
    return summary


def _write_errors(failed: list[dict[str, Any]], output: Path) -> None:
    path = errors_path(output)
    if not failed:
        path.unlink(missing_ok=True)  # a previous run's list would describe another output
        return
    with atomic_path(path) as tmp:
        pd.DataFrame(failed, columns=["row", "id", "error"]).to_csv(tmp, index=False)


@stage_main("predict", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab predict", description="Score a CSV or Parquet file.")
    parser.add_argument("--input", required=True, help="CSV or Parquet file with the model's feature columns")
    parser.add_argument("--output", required=True, help="file to write (atomically): .parquet, .pq or .csv")
    add_model_arguments(parser)
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows scored at a time (memory bound)")
    parser.add_argument(
        "--workers", type=int, default=0, help="a folder --input: score its partitions on a local Dask cluster of N"
    )
    parser.add_argument("--scheduler", help="a folder --input: score its partitions on this Dask scheduler")
    args = parser.parse_args(argv)
    folder = Path(args.input).is_dir()
    if folder:
        check_folder_output(args.output)
        if args.workers < 0:
            raise UserError(problem("--workers", "must be 0 (this process) or more", args.workers))
    else:
        check_output(args.output)  # before the model is loaded
        if args.workers or args.scheduler:
            fix = "Score a file in this process (leave them out), or pass a folder of partitions"
            raise UserError(problem("--workers/--scheduler", "apply to a folder --input", args.input, fix))
    model, info = resolve_model(args.model, stage=args.stage, version=args.version)
    started = time.perf_counter()
    if folder:
        summary = _predict_folder(model, info["version"], args)
    else:
        summary = predict_file(
            model, version=info["version"], input=args.input, output=args.output, chunk_rows=args.chunk_rows
        )
    seconds = time.perf_counter() - started
    log.info(
        "scored %d of %d rows with model %s in %.1fs (%.0f rows/s) → %s",
        summary["scored"],
        summary["rows"],
        info["version"],
        seconds,
        summary["rows"] / max(seconds, 1e-9),
        args.output,
    )
