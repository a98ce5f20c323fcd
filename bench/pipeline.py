"""Benchmark the pipeline end to end and print the figures.

    .venv/bin/python bench/pipeline.py                       # the full demo table (30k rows)
    .venv/bin/python bench/pipeline.py --rows 1000000 --columns 40 -S hyperparameters.random_forest.n_estimators=50

Prints: the end-to-end `dvc repro --force` time (all stages), the no-op `dvc repro` time, one
process doing the same work (`reprotab.pipeline.run_stages`: every stage's main in dvc.yaml's
order, same files in and out), a bare in-process script doing the core of it
(`reprotab.pipeline.run`: read, prepare, tune, train, score; no reports, no gate) and the
ratio of `dvc repro` to each, then each stage's wall time and peak memory (resident set
size of the stage process, sampled every 50 ms) against the in-memory size of the raw frame.

--rows above the demo table generates a table with reprotab.data.demo.generate (same columns and
signal) and --columns pads it with seeded noise columns (numeric, a few categorical) up to that
many feature columns. -S overrides params like `dvc exp run -S` (e.g. fewer trees at 1M rows).
Each figure is the median of --repeat runs in a fresh temporary copy of the repository.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = tuple(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])  # every stage, in dvc.yaml's order
BARE = """
import pandas as pd
from reprotab.params.loader import load_params
from reprotab.pipeline import run
p = load_params()
run(pd.read_parquet(p.data.path), p)
"""
SAME_WORK = "from reprotab.pipeline import run_stages; run_stages()"


def table(rows: int | None, columns: int | None):
    """The raw table: the shipped demo table, or a generated one padded with noise columns."""
    import numpy as np
    import pandas as pd

    from reprotab.data.demo import generate

    frame = pd.read_parquet(ROOT / "data/raw/churn.parquet") if rows is None else generate(rows=rows, seed=0)
    features = [c for c in frame.columns if c not in ("customer_id", "churned", "next_month_spend")]
    rng = np.random.default_rng(1)
    for index in range(max(0, (columns or 0) - len(features))):
        if index % 5 == 4:
            frame[f"noise_cat_{index}"] = rng.choice([f"level_{k}" for k in range(8)], size=len(frame))
        else:
            frame[f"noise_{index}"] = rng.normal(size=len(frame)).round(4)
    return frame


def set_params(path: Path, overrides: list[str]) -> None:
    """Apply `key.path=value` overrides to params.yaml (values parsed as YAML)."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    for override in overrides:
        key, value = override.split("=", 1)
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


class PeakMemory(threading.Thread):
    """Samples the process tree under `pid`: peak RSS and first/last time seen per stage."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.peak: dict[str, int] = {}
        self.seen: dict[str, list[float]] = {}

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.done.is_set():
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                break
            for child in children:
                try:
                    command = " ".join(child.cmdline())
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                stage = next((s for s in STAGES if f"stages.{s}" in command), None)
                if stage:
                    self.peak[stage] = max(self.peak.get(stage, 0), rss)
                    now = time.perf_counter()
                    self.seen.setdefault(stage, [now, now])[1] = now
            time.sleep(0.05)


def timed(args: list[str], cwd: Path, env: dict, *, watch: bool = False) -> tuple[float, PeakMemory | None]:
    started = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = PeakMemory(process.pid) if watch else None
    if watcher:
        watcher.start()
    output, _ = process.communicate()
    if watcher:
        watcher.done.set()
        watcher.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return time.perf_counter() - started, watcher


def main() -> None:
    from tests.helpers import make_repo, tool_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--rows", type=int, default=None, help="generate this many rows (default: the demo table)")
    parser.add_argument("--columns", type=int, default=None, help="pad with noise columns up to this many features")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], help="params override key=value")
    args = parser.parse_args()
    dvc = str(Path(sys.executable).parent / "dvc")
    env = tool_env({"PYTHONPATH": str(ROOT)})
    frame = table(args.rows, args.columns)
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    full, noop, same, bare, peaks, spans = [], [], [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp)
            make_repo(repo, rows=None)
            if args.rows is not None or args.columns:
                frame.to_parquet(repo / "data/raw/churn.parquet", index=False)
            set_params(repo / "params.yaml", args.overrides)
            subprocess.run(["git", "commit", "-qam", "bench data and params"], cwd=repo, env=env, check=True)
            seconds, watcher = timed([dvc, "repro", "--force"], repo, env, watch=True)
            full.append(seconds)
            peaks.append(watcher.peak)
            spans.append({stage: end - start for stage, (start, end) in watcher.seen.items()})
            noop.append(timed([dvc, "repro"], repo, env)[0])
            same.append(timed([sys.executable, "-c", SAME_WORK], repo, env)[0])
            bare.append(timed([sys.executable, "-c", BARE], repo, env)[0])
    f, n, s, b = (statistics.median(x) for x in (full, noop, same, bare))
    shape = f"{len(frame):,} rows x {frame.shape[1]} columns, {frame_mb:.0f} MB in memory"
    source = "demo table" if args.rows is None else "generated"
    print(f"data: {source} ({shape}); overrides: {args.overrides or 'none'}")
    print(f"runs: {args.repeat}")
    print(f"end-to-end dvc repro : {f:7.2f} s")
    print(f"no-op dvc repro      : {n:7.2f} s")
    print(f"same work, 1 process : {s:7.2f} s  (reprotab.pipeline.run_stages: every stage's main)")
    print(f"bare script          : {b:7.2f} s  (reprotab.pipeline.run: prepare, tune, train, score)")
    print(f"ratio to same work   : {f / s:7.2f}  (dvc repro --force / run_stages; target <= 2)")
    print(f"ratio to bare        : {f / b:7.2f}  (dvc repro --force / pipeline.run)")
    print("per stage: wall time of the stage process, peak RSS, and peak RSS / frame size (target <= 3)")
    total = 0.0
    for stage in STAGES:
        peak = statistics.median(p.get(stage, 0) for p in peaks) / 2**20
        span = statistics.median(s.get(stage, 0.0) for s in spans)
        total += span
        print(f"  {stage:<9} {span:7.2f} s  {peak:8.0f} MB  {peak / frame_mb:6.2f}x")
    print(f"  stages together {total:7.2f} s; dvc between them {f - total:7.2f} s (hashing, locking, its own start-up)")
    print("start-up: each stage is its own process and pays its imports (python -c 'import stages.<name>')")
    for stage in STAGES:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import stages.{stage}"], cwd=ROOT, env=env, check=True)
        print(f"  {stage:<9} {time.perf_counter() - started:7.2f} s")


if __name__ == "__main__":
    main()
