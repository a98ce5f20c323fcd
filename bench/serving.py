"""Benchmark batch scoring and the HTTP service, and print the figures.

    .venv/bin/python bench/serving.py [--rows 1000000] [--trees 100] [--seconds 10]

Trains a random forest in-process on 5,000 demo rows (params.yaml settings, --trees trees), or
scores with --model (e.g. the pipeline's models/model.joblib), then prints:
- batch scoring: `reprotab predict` on --rows generated rows (Parquet in a temp dir), run as its
  own process: wall time, rows/s and that process's peak resident memory;
- the service (`reprotab serve`, a real uvicorn process on 127.0.0.1): p50/p99 latency of
  /predict with 1 row and with 1,000 rows (sequential requests), and requests/s of 1-row
  requests with 1 and with 8 concurrent clients over --seconds each.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latencies(url: str, rows: list[dict], count: int) -> list[float]:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/predict", json={"rows": rows}).raise_for_status()  # warm up
        for _ in range(count):
            started = time.perf_counter()
            client.post("/predict", json={"rows": rows}).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def throughput(url: str, rows: list[dict], clients: int, seconds: float) -> float:
    import httpx

    done = [0] * clients
    stop = time.monotonic() + seconds

    def work(n: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while time.monotonic() < stop:
                client.post("/predict", json={"rows": rows}).raise_for_status()
                done[n] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", type=Path, help="score with this model file (e.g. models/model.joblib) instead")
    args = parser.parse_args()

    from reprotab.data.demo import generate
    from reprotab.model import served
    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run
    from tests.helpers import base_params, request_rows, serve_command, server, server_env

    forest = {"n_estimators": args.trees, "min_samples_leaf": 5, "max_features": "sqrt", "n_jobs": -1}
    params = parse_params(base_params(hyperparameters={"random_forest": forest}))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model.joblib"
        if args.model:
            model.write_bytes(args.model.read_bytes())
            what = f"{args.model} ({type(served.load(model).estimator).__name__})"
        else:
            served.save(run(generate(rows=5_000, seed=0), params, splits_to_score=()).model, model)
            what = f"random_forest, {args.trees} trees"
        print(f"model: {what}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")

        generate(rows=args.rows, seed=1).to_parquet(work / "batch.parquet", index=False)
        command = [sys.executable, "-m", "reprotab", "predict", "--model", str(model)]
        command += ["--input", str(work / "batch.parquet"), "--output", str(work / "scored.parquet")]
        started = time.perf_counter()
        subprocess.run(command, cwd=work, env=server_env(), check=True, capture_output=True)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"batch scoring: {args.rows:,} rows in {seconds:.1f}s = {args.rows / seconds:,.0f} rows/s "
            f"(whole process, model load included); peak memory {peak_mb:,.0f} MB"
        )

        with server(serve_command(model, "--log-dir", str(work / "log")), cwd=work) as url:
            for size, count in ((1, 200), (1_000, 30)):
                times = latencies(url, request_rows(size), count)
                print(
                    f"service latency, {size:,} row(s)/request: p50 {1000 * statistics.median(times):.1f} ms, "
                    f"p99 {1000 * percentile(times, 0.99):.1f} ms ({count} requests)"
                )
            for clients in (1, 8):
                rate = throughput(url, request_rows(1), clients, args.seconds)
                print(f"service throughput, 1-row requests, {clients} client(s): {rate:,.1f} requests/s")


if __name__ == "__main__":
    main()
