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

MARKS = [  # log line that starts a step → the step's name
    ("INFO reprotab.retraining: $ dvc add", "monitor (drift report of the batch)"),
    ("params.yaml: data.batches.combine", "version the batch (copy, dvc add)"),
    ("INFO reprotab.retraining: $ dvc repro", "commit the batch"),
    ("committed", "dvc repro (prepare → gate)"),
    ("INFO reprotab.retraining: $ dvc push", "commit the run"),
    ("model@", "dvc push"),
]


def run(args: list[str], cwd: Path) -> float:
    from tests.conftest import tool_env

    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=tool_env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def steps(log: str) -> list[tuple[str, float]]:
    """Seconds between the log's step marks (whole-second log stamps)."""
    stamps = []
    for line in log.splitlines():
        match = re.match(r"(\d\d:\d\d:\d\d) ", line)
        if match:
            stamps.append((dt.datetime.strptime(match[1], "%H:%M:%S"), line))
    if not stamps:
        return []
    cuts, start = [], stamps[0][0]
    for needle, label in MARKS:
        hit = next((t for t, line in stamps if needle in line and t >= start), None)
        if hit is not None:
            cuts.append((label, (hit - start).total_seconds()))
            start = hit
    cuts.append(("registry (register, promote, summary commit)", (stamps[-1][0] - start).total_seconds()))
    return cuts


def main() -> None:
    from reprotab.demo_data import generate
    from tests.conftest import make_repo

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
    for label, seconds in steps(log):
        print(f"  {label:<46}: {seconds:5.0f} s")


if __name__ == "__main__":
    main()
