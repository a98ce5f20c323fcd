"""Benchmark the pipeline on the full demo data and print the figures.

    .venv/bin/python bench/pipeline.py [--repeat 3]

Prints: the end-to-end `dvc repro` time (all five stages, cold), the no-op `dvc repro` time,
and the overhead ratio of the pipeline to a bare script that does the same work in one
process (read, split, featurize, fit, score). Each figure is the median of --repeat runs in a
fresh temporary copy of the repository.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARE = """
import pandas as pd
from reprotab.params import load_params
from reprotab.pipeline import run
p = load_params()
run(pd.read_parquet(p.data.path), p)
"""


def timed(args: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    from tests.conftest import make_repo, tool_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dvc = str(Path(sys.executable).parent / "dvc")
    env = tool_env({"PYTHONPATH": str(ROOT)})
    full, noop, bare = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            make_repo(repo, rows=None)
            full.append(timed([dvc, "repro", "--force"], repo, env))
            noop.append(timed([dvc, "repro"], repo, env))
            bare.append(timed([sys.executable, "-c", BARE], repo, env))
    f, n, b = (statistics.median(x) for x in (full, noop, bare))
    print(f"data: {ROOT / 'data/raw/churn.parquet'} (full demo table), runs: {args.repeat}")
    print(f"end-to-end dvc repro : {f:6.2f} s")
    print(f"no-op dvc repro      : {n:6.2f} s")
    print(f"bare script          : {b:6.2f} s")
    print(f"overhead ratio       : {f / b:6.2f}  (pipeline / bare; target <= 1.3)")
    print("where the overhead goes: each stage is its own process and pays its imports")
    for stage in ("validate", "prepare", "featurize", "tune", "train", "evaluate"):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import stages.{stage}"], cwd=ROOT, env=env, check=True)
        print(f"  start-up of stages.{stage:<9}: {time.perf_counter() - started:5.2f} s")


if __name__ == "__main__":
    main()
