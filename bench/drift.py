"""Benchmark the drift check of a wide batch against a stored reference, and print the figures.

    .venv/bin/python bench/drift.py [--rows 1000000] [--columns 1000] [--train-rows 20000]

1. Generates a table of --columns columns (one in 50 a category of 8 levels, the rest numbers; the
   target from a few of them) and trains an XGBoost model on --train-rows rows in-process
   (reprotab.pipeline.run, no tuning).
2. Summarizes the model's reference as the train stage does (reprotab/monitoring/reference.py):
   time, and the size of models/reference.json.
3. Writes a batch of --rows rows of the same generator, one column in 20 shifted, as Parquet.
4. Runs `reprotab monitor --batch` on it in a child process twice: with the stored reference
   (after), and with none, so the reference is rebuilt from the training and test splits as every
   check did before references were stored (before). Prints wall time, peak RSS and what drifted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def table(rows: int, columns: int, *, seed: int, shift: float) -> pd.DataFrame:
    """Numbers N(0, 1) (float32) and categories of 8 levels; `shift` moves every 20th number."""
    rng = np.random.default_rng(seed)
    numbers = rng.standard_normal((rows, columns), dtype=np.float32)
    frame = {}
    for j in range(columns):
        name = f"x{j:04d}"
        if j % 50 == 49:
            frame[name] = pd.Categorical.from_codes(
                np.minimum((np.abs(numbers[:, j]) * 4).astype(int), 7), [f"level{k}" for k in range(8)]
            )
        else:
            frame[name] = numbers[:, j] + (shift if j % 20 == 3 else 0.0)
    logit = numbers[:, 0] + 0.8 * numbers[:, 1] - 0.6 * numbers[:, 2]
    frame["customer_id"] = np.arange(rows)
    frame["churned"] = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame(frame)


def child(command: list[str], log: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of a child process (its own, from wait4)."""
    started = time.perf_counter()
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--shift", type=float, default=0.5)
    parser.add_argument("--skip-before", action="store_true", help="do not time the check without a reference")
    args = parser.parse_args()

    import yaml

    from reprotab.model import served
    from reprotab.monitoring.reference import build, write
    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(model="xgboost", metric="roc_auc")
    raw["data"].update(target="churned", id_column="customer_id", drop_columns=[])
    raw["tuner"] = "none"
    raw["hyperparameters"]["xgboost"] = {"n_estimators": 60, "max_depth": 4, "learning_rate": 0.2, "n_jobs": 2}
    params = parse_params(raw)
    with tempfile.TemporaryDirectory(prefix="reprotab-drift-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        result = run(table(args.train_rows, args.columns, seed=0, shift=0.0), params)
        print(
            f"model: XGBoost on {args.train_rows:,} rows x {args.columns} columns, "
            f"{time.perf_counter() - started:.1f} s"
        )
        model_file = work / "model.zip"
        served.save(result.model, model_file)
        result.splits["train"].to_parquet(work / "train.parquet")
        result.splits["test"].to_parquet(work / "test.parquet")
        started = time.perf_counter()
        summary = build(
            result.model,
            result.splits["train"],
            result.splits["test"],
            model_sha256=hashlib.sha256(model_file.read_bytes()).hexdigest(),
            origin="bench",
        )
        write(summary, work / "reference.json")
        print(
            f"reference (train, once): {time.perf_counter() - started:.1f} s, "
            f"{(work / 'reference.json').stat().st_size / 2**20:.1f} MiB for {len(summary.features)} features"
        )
        started = time.perf_counter()
        batch = table(args.rows, args.columns, seed=7, shift=args.shift).drop(columns=["churned"])
        batch.to_parquet(work / "batch.parquet", index=False)
        size = batch.memory_usage(deep=True).sum()
        del batch
        print(
            f"batch: {args.rows:,} rows x {args.columns} columns, {size / 2**30:.2f} GiB in pandas "
            f"(written in {time.perf_counter() - started:.1f} s)"
        )
        (work / "params.yaml").write_text(yaml.safe_dump({**raw, "monitor": {**raw["monitor"], "bootstrap": 0}}))
        base = [
            sys.executable, "-m", "reprotab", "monitor", "--batch", str(work / "batch.parquet"),
            "--model", str(model_file), "--reference", str(work / "train.parquet"),
            "--holdout", str(work / "test.parquet"), "--params", str(work / "params.yaml"),
            "--metrics", str(work / "none.json"), "--importance", str(work / "none.csv"),
        ]  # fmt: skip
        runs = [("after: stored reference", ["--drift-reference", str(work / "reference.json")])]
        if not args.skip_before:
            runs.append(("before: reference from the splits", ["--drift-reference", str(work / "none.json")]))
        for label, extra in runs:
            out = work / label.split(":")[0]
            seconds, peak = child([*base, *extra, "--out", str(out), "--name", "batch"], work / "monitor.log")
            report = json.loads((out / "batch" / "drift.json").read_text())
            shifted = {f"x{j:04d}" for j in range(args.columns) if j % 20 == 3 and j % 50 != 49}
            found = set(report["drifted"])
            print(
                f"{label}: {seconds:.1f} s wall, peak RSS {peak / 2**30:.2f} GiB; {len(found)} features drifted "
                f"({len(found & shifted)} of the {len(shifted)} shifted, {len(found - shifted)} others)"
            )


if __name__ == "__main__":
    main()
