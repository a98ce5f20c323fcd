"""Benchmark one month of the retraining loop on the full demo data and print the figures.

    .venv/bin/python bench/retraining.py [--batch-rows 10000] [--drift 1.0] [--mode refit]

In a temporary git + DVC copy of this project with the full demo table (30,000 rows) and the
shipped params: month 1 (`dvc repro`, commit, register, promote) is set up and timed, then
`reprotab retrain --batch <a labeled demo batch of --batch-rows rows> --promote` is timed as one
command, and its log (reports/logs/retrain.log) is split into its steps: monitor, versioning the
batch, `dvc repro`, commits, `dvc push`, registry.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (interval label, log line that ends it); the command's own wall clock gives the first interval
EVENTS = [
    ("version the batch and commit it", "committed"),
    ("dvc repro (prepare → gate) and commit the run", "Retrain on batch"),
    ("dvc push, registry, summary commit", None),  # to the last line
]


def run(args: list[str], cwd: Path) -> float:
    from tests.helpers import tool_env

    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def steps(log: str, total: float) -> list[tuple[str, float]]:
    """Seconds per step from the log's whole-second stamps; start-up and monitor = the rest."""
    stamps = []
    for line in log.splitlines():
        match = re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}) ", line)
        if match:
            stamps.append((dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S%z"), line))
    begin = next((t for t, line in stamps if "$ dvc add" in line), None)
    if begin is None:
        return []
    cuts, start = [], begin
    for label, needle in EVENTS:
        end = next((t for t, line in stamps if t >= start and needle in line), None) if needle else stamps[-1][0]
        if end is None:
            break
        cuts.append((label, (end - start).total_seconds()))
        start = end
    span = (stamps[-1][0] - begin).total_seconds()
    return [("start-up, monitor (drift report of the batch)", total - span), *cuts]


def main() -> None:
    from reprotab.data.demo import generate
    from tests.helpers import make_repo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--drift", type=float, default=1.0)
    parser.add_argument("--mode", default="refit", choices=["refit", "continue"])
    args = parser.parse_args()
    python, dvc = sys.executable, str(Path(sys.executable).parent / "dvc")
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp) / "project", rows=None)
        for key, value in (("user.name", "bench"), ("user.email", "bench@localhost")):
            subprocess.run(["git", "config", key, value], cwd=repo, check=True)
        first = run([dvc, "repro", "-q"], repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", "month 1"], repo)
        registry = run([python, "-m", "reprotab", "registry", "register"], repo)
        registry += run([python, "-m", "reprotab", "registry", "promote", "v1.0.0", "--stage", "prod"], repo)
        run(["git", "commit", "-q", "-am", "champion v1.0.0"], repo)
        batch = Path(tmp) / "2026-12.parquet"
        generate(rows=args.batch_rows, seed=11, drift=args.drift).to_parquet(batch, index=False)
        loop = run([python, "-m", "reprotab", "retrain", "--batch", str(batch), "--promote", "--mode", args.mode], repo)
        summary = (repo / "reports/retrain/2026-12.md").read_text().splitlines()
        log = (repo / "reports/logs/retrain.log").read_text()
    print(f"data: full demo table (30,000 rows) + a {args.batch_rows:,}-row batch, drift {args.drift}, {args.mode}")
    print(f"month 1: dvc repro                 : {first:7.1f} s")
    print(f"month 1: register + promote        : {registry:7.1f} s")
    print(f"one month: reprotab retrain --promote: {loop:7.1f} s  → {summary[2]}")
    for label, seconds in steps(log, loop):
        print(f"  {label:<46}: {seconds:5.0f} s")


if __name__ == "__main__":
    main()
