"""Benchmark engine: dask on a local cluster: prepare, train, scoring and only-new partitions.

    .venv/bin/python bench/scale.py [--rows 2000000] [--partitions 20] [--workers 2]
                                    [--memory-limit 1GiB] [--local-max 3000000] [--keep DIR]
                                    [--score-rows 10000000]

Generates a partitioned demo table (--partitions day folders, ids unique across them), then on one
local cluster (127.0.0.1, dashboard off) prints:
- prepare over all partitions (seconds, rows/s) and train with XGBoost on the cluster (seconds,
  kept rounds, test ROC-AUC), then train again: the two models' sha256 (byte-reproducible or not);
- the local engine on the same prepared rows when they are at most --local-max (seconds, test
  ROC-AUC): the quality the cluster must match;
- scoring the folder (`reprotab predict --input <folder>` with the cluster): rows/s; with
  --score-rows, also a separate folder of that many new rows (the scoring target is set over 10M);
- monitoring the folder (`reprotab monitor --batch <folder>`: each partition alone, against the
  model's drift reference);
- only new partitions: one more partition of 1% of the rows, then prepare, predict and monitor
  again, each beside the same stage run on that partition alone (the target: at most 1.2× the time);
- the peak resident memory of each worker over the whole run, beside --memory-limit, and the
  table's in-memory size (pandas) beside the cluster's total limit.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_partitions(folder: Path, *, rows: int, partitions: int, first: int = 0) -> int:
    """`partitions` day folders of demo rows; returns the table's in-memory bytes (pandas, deep)."""
    from reprotab.data.demo import generate

    size = 0
    for k in range(first, first + partitions):
        frame = generate(rows=rows // partitions, seed=1000 + k)
        frame["customer_id"] = f"d{k}-" + frame["customer_id"].astype(str)
        target = folder / f"day={k:04d}" / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(target, index=False, row_group_size=100_000)
        size += int(frame.memory_usage(deep=True).sum())
    return size


class PeakMemory:
    """The peak resident memory of each worker process, polled every 0.2 s from this process."""

    def __init__(self, client: Any) -> None:
        import os

        import psutil

        self.processes = {name: psutil.Process(pid) for name, pid in client.run(os.getpid).items()}
        self.peak = dict.fromkeys(self.processes, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for name, process in self.processes.items():
                try:
                    self.peak[name] = max(self.peak[name], process.memory_info().rss)
                except Exception:  # a worker restarted by its nanny: keep what was seen
                    continue

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(function: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def test_auc(model: Any, prepared: Path) -> float:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    test = pd.read_parquet(prepared / "test.parquet")
    return float(roc_auc_score(test["churned"], model.predict_proba(test)[:, model.positive_index()]))


def monitor_source(model: Any, prepared: Path, schema: Any) -> Any:
    """What `reprotab monitor` judges with: the model and its drift reference, as the reference stage builds it."""
    from reprotab.engine.partitions import read_split
    from reprotab.monitoring.inputs import MonitorInputs
    from reprotab.monitoring.reference import SAMPLE_ROWS, build

    rows = {
        name: read_split(prepared / f"{name}.parquet", sample_rows=SAMPLE_ROWS, seed=0, id_column=schema.id_column)
        for name in ("train", "test")
    }
    summary = build(model, rows["train"], rows["test"], model_sha256=None, origin="bench")
    return MonitorInputs(
        model=model,
        version="bench",
        commit=None,
        source="bench",
        reference=summary,
        test_metrics=None,
        importance=None,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--local-max", type=int, default=3_000_000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp dir)")
    parser.add_argument(
        "--score-rows", type=int, default=0, help="also score a separate folder of this many rows (e.g. 10000000)"
    )
    args = parser.parse_args(argv)

    import yaml
    from dask.utils import format_bytes, parse_bytes

    from reprotab.engine.cluster import open_client
    from reprotab.engine.prepare import prepare_partitions
    from reprotab.engine.scoring import predict_folder
    from reprotab.engine.train import run_train_dask
    from reprotab.model.schema import Schema
    from reprotab.monitoring.partitions import monitor_folder
    from reprotab.monitoring.report import run as check
    from reprotab.params.loader import parse_params
    from reprotab.train.run import parquet_splits, run_train
    from reprotab.tune.best import BestParams

    work = args.keep or Path(tempfile.mkdtemp(prefix="reprotab-scale-"))
    parts, prepared = work / "parts", work / "prepared"
    print(f"generating {args.rows:,} rows in {args.partitions} partitions under {parts}", flush=True)
    in_memory, _ = timed(write_partitions, parts, rows=args.rows, partitions=args.partitions)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(engine="dask", model="xgboost")
    raw["data"]["path"] = str(parts)
    raw["dask"].update(n_workers=args.workers, memory_limit=args.memory_limit)
    params = parse_params(raw)
    best = BestParams(tuner="none", model=None, params={}, searched=False)
    figures: list[tuple[str, str]] = []
    total_limit = args.workers * parse_bytes(args.memory_limit)
    figures.append(
        ("table in memory (pandas)", f"{format_bytes(in_memory)} vs cluster limit {format_bytes(total_limit)}")
    )
    with open_client(params.dask) as client:
        memory = PeakMemory(client)
        (schema, summary), seconds = timed(prepare_partitions, params, prepared, client)
        figures.append(("prepare, all partitions", f"{seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)"))
        trained, seconds = timed(
            run_train_dask, schema=schema, best=best, params=params, prepared=prepared, client=client
        )
        sha = hashlib.sha256(trained.model.to_bytes()).hexdigest()
        auc = test_auc(trained.model, prepared)
        kept = trained.summary.get("best_iteration")
        figures.append(("train on dask (xgboost)", f"{seconds:.1f} s, {kept} rounds kept, test ROC-AUC {auc:.4f}"))
        again, seconds = timed(
            run_train_dask, schema=schema, best=best, params=params, prepared=prepared, client=client
        )
        sha_again = hashlib.sha256(again.model.to_bytes()).hexdigest()
        same = "identical" if sha == sha_again else "DIFFERENT"
        figures.append(("two trains: model sha256", f"{sha[:16]} / {sha_again[:16]} ({same})"))
        if summary["train"]["rows"] + summary["validation"]["rows"] <= args.local_max:  # the same rows, one process
            local, seconds = timed(
                run_train,
                schema=Schema.from_dict(schema.to_dict()),
                best=best,
                params=parse_params({**raw, "engine": "local"}),
                read_split=parquet_splits(prepared),
            )
            figures.append(
                ("local engine, same rows", f"{seconds:.1f} s, test ROC-AUC {test_auc(local.model, prepared):.4f}")
            )
        model = trained.model

        def score(folder: Path, output: Path) -> dict[str, Any]:
            return predict_folder(
                model, version="bench", input=folder, output=output, chunk_rows=100_000, client=client
            )

        scored, seconds = timed(score, parts, work / "scored")
        figures.append(("scoring the folder", f"{seconds:.1f} s ({scored['rows'] / seconds:,.0f} rows/s)"))
        if args.score_rows:  # scoring alone over a larger folder: the model above, new rows
            write_partitions(work / "to-score", rows=args.score_rows, partitions=args.partitions, first=1000)
            big, seconds = timed(score, work / "to-score", work / "big-scored")
            rate = f"{seconds:.1f} s ({big['rows'] / seconds:,.0f} rows/s)"
            figures.append((f"scoring {args.score_rows:,} rows", rate))
            shutil.rmtree(work / "to-score")
            shutil.rmtree(work / "big-scored")
        source = monitor_source(model, prepared, schema)

        def monitor(folder: Path, out: Path) -> list[dict[str, Any]]:
            return monitor_folder(source, folder, params=params, out=out, check=check)

        checked, seconds = timed(monitor, parts, work / "monitored")
        figures.append(("monitor the folder (each partition alone)", f"{seconds:.1f} s for {len(checked)} partitions"))
        new_rows = max(args.rows // 100, 1000)
        write_partitions(parts, rows=new_rows, partitions=1, first=args.partitions)
        (_, added), prepare_new = timed(prepare_partitions, params, prepared, client)
        _, predict_new = timed(score, parts, work / "scored")
        _, monitor_new = timed(monitor, parts, work / "monitored")
        alone = work / "alone"
        write_partitions(alone, rows=new_rows, partitions=1, first=args.partitions)
        alone_params = parse_params({**raw, "data": {**raw["data"], "path": str(alone)}})
        _, prepare_alone = timed(prepare_partitions, alone_params, work / "alone-prepared", client)
        _, predict_alone = timed(score, alone, work / "alone-scored")
        _, monitor_alone = timed(monitor, alone, work / "alone-monitored")
        processed = added["partitions"]["processed"]
        figures.append(
            (
                f"+1 partition ({new_rows:,} rows): prepare",
                f"{prepare_new:.2f} s vs {prepare_alone:.2f} s alone "
                f"({prepare_new / prepare_alone:.2f}×; {processed} processed)",
            )
        )
        figures.append(
            (
                "+1 partition: predict",
                f"{predict_new:.2f} s vs {predict_alone:.2f} s alone ({predict_new / predict_alone:.2f}×)",
            )
        )
        figures.append(
            (
                "+1 partition: monitor",
                f"{monitor_new:.2f} s vs {monitor_alone:.2f} s alone ({monitor_new / monitor_alone:.2f}×)",
            )
        )
        peaks = memory.stop()
    peak_text = ", ".join(f"{name}: {format_bytes(rss)}" for name, rss in sorted(peaks.items()))
    figures.append(("peak RSS per worker", f"{peak_text} (limit {args.memory_limit} each)"))
    width = max(len(name) for name, _ in figures)
    print()
    for name, value in figures:
        print(f"{name:<{width}}  {value}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
