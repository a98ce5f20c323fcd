"""How OpenMP's wait policy changes LightGBM fit time, alone and next to another busy process.

    .venv/bin/python bench/threads.py            # [--fits 5] [--trees 300]

Each cell runs `--fits` LightGBM fits (breast_cancer, n_jobs -1) in a fresh process with the
OpenMP wait settings unset (libgomp's default: idle threads spin before they sleep), with
OMP_WAIT_POLICY=PASSIVE (what `import reprotab` sets: they sleep at once) or with a shorter spin
(GOMP_SPINCOUNT). "busy" runs the same fits in a second process at the same time, as two
test workers, two stages or a benchmark next to a pipeline do; the figure is the slower of the
two. Prints wall seconds per cell.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

FITS = """
import sys, lightgbm as lgb
from sklearn.datasets import load_breast_cancer
X, y = load_breast_cancer(return_X_y=True)
for _ in range(int(sys.argv[1])):
    lgb.LGBMClassifier(n_estimators=int(sys.argv[2]), learning_rate=0.05, verbose=-1, n_jobs=-1).fit(X, y)
"""

SETTINGS = {
    "unset (libgomp default)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}


def timed(setting: dict[str, str], *, copies: int, fits: int, trees: int) -> float:
    """Wall seconds until every one of `copies` concurrent processes has done its fits."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | setting
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-c", FITS, str(fits), str(trees)], env=env) for _ in range(copies)]
    for process in running:
        if process.wait() != 0:
            raise SystemExit(f"the fits failed with {setting}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, default=5)
    parser.add_argument("--trees", type=int, default=300)
    args = parser.parse_args()
    print(f"{args.fits} LightGBM fits of {args.trees} trees on breast_cancer, n_jobs -1, {os.cpu_count()} CPUs")
    print(f"{'environment':<28} {'alone':>8} {'busy (2 processes)':>20}")
    for name, setting in SETTINGS.items():
        alone = timed(setting, copies=1, fits=args.fits, trees=args.trees)
        busy = timed(setting, copies=2, fits=args.fits, trees=args.trees)
        print(f"{name:<28} {alone:>7.1f}s {busy:>19.1f}s", flush=True)


if __name__ == "__main__":
    main()
