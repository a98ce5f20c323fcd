"""Benchmark the served model: its file, batch scoring and the HTTP service, and print the figures.

    .venv/bin/python bench/serving.py [--family catboost|lightgbm|xgboost|random_forest|linear | --model FILE]
                                      [--rows 1000000] [--seconds 10] [--url URL] [--pickle OLD]

The model: --model (e.g. the pipeline's models/model.zip), else one of --family trained in-process
on 5,000 demo rows with params.yaml's settings. Then it prints:
- the model file: its size (and --pickle's, an older version's pickle of the same model, for
  comparison) and the median time `served.load` takes to read and check it;
- batch scoring: `reprotab predict` on --rows generated rows (Parquet in a temp dir), run as its
  own process: wall time, rows/s, that process's peak resident memory and the in-memory size of
  the input frame;
- the service (`reprotab serve`, a real uvicorn process on 127.0.0.1, or --url): the first
  request after start-up, then with wrk (Debian's `wrk`, the load generator on the same machine;
  without it, a Python client, which costs more than the service does) p50/p99 and requests/s
  of 1-row requests on 1 and 8 connections and of 1,000-row requests on 1 connection, --seconds
  each. Every figure is printed beside its target (docs/model-file.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

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


def wrk(url: str, rows: list[dict], connections: int, seconds: float, work: Path) -> dict[str, float] | None:
    """p50, p99 (ms) and requests/s from wrk, or None without wrk."""
    if shutil.which("wrk") is None:
        return None
    body = work / f"body-{len(rows)}.json"
    body.write_text(json.dumps({"rows": rows}))
    script = work / f"post-{len(rows)}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    threads = min(connections, 2)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    out = subprocess.run([*command, f"{url}/predict"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk got errors from the service:\n{out}")
    found = {
        "p50": _wrk_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M)),
        "p99": _wrk_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)),
        "rps": float(re.search(r"Requests/sec:\s+(\S+)", out).group(1)),  # type: ignore[union-attr]
    }
    return found


def _wrk_ms(match: re.Match[str] | None) -> float:
    assert match is not None, "wrk printed no latency distribution"
    value = match.group(1)
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * scale
    raise ValueError(value)


def service(url: str, work: Path, seconds: float) -> None:
    from tests.helpers import request_rows

    one, thousand = request_rows(1), request_rows(1_000)
    runs = (
        ("1 row, 1 connection", one, 1),
        ("1 row, 8 connections", one, 8),
        ("1,000 rows, 1 connection", thousand, 1),
    )
    targets = {
        "1 row, 1 connection": "target p50 ≤ 1.5 ms",
        "1 row, 8 connections": "target p50 ≤ 2 ms, p99 ≤ 10 ms, ≥ 1,500 req/s",
        "1,000 rows, 1 connection": "target p50 ≤ 20 ms",
    }
    for label, rows, connections in runs:
        found = wrk(url, rows, connections, seconds, work)
        if found is None:  # no wrk: a Python client, sequential for latency, threads for throughput
            times = latencies(url, rows, 200 if len(rows) == 1 else 30)
            rate = throughput(url, rows, connections, seconds)
            found = {"p50": 1000 * statistics.median(times), "p99": 1000 * percentile(times, 0.99), "rps": rate}
            label += " (Python client: install wrk for the real figure)"
        print(
            f"service, {label}: p50 {found['p50']:.2f} ms, p99 {found['p99']:.2f} ms, "
            f"{found['rps']:,.0f} req/s   [{targets[label.split(' (')[0]]}]"
        )


def first_request(url: str) -> tuple[float, float]:
    """Milliseconds the first /predict after start-up takes, and the median of the next 50, from
    the same Python client on a connection already open (the client's own cost is in both)."""
    import httpx

    from tests.helpers import request_rows

    body = {"rows": request_rows(1)}
    with httpx.Client(base_url=url, timeout=120) as client:
        client.get("/health").raise_for_status()  # the connection and the client's own first call
        times = []
        for _ in range(51):
            started = time.perf_counter()
            client.post("/predict", json=body).raise_for_status()
            times.append(1000 * (time.perf_counter() - started))
    return times[0], statistics.median(times[1:])


def write_batch(rows: int, path: Path) -> float:
    """Write `rows` demo rows to `path` from a child process (so this one never holds them, and the
    scoring process it starts later does not inherit their pages); returns the frame's MB in memory."""
    code = (
        "import sys; from reprotab.data.demo import generate; "
        f"f = generate(rows={rows}, seed=1); f.to_parquet({str(path)!r}, index=False); "
        "print(f.memory_usage(deep=True).sum() / 2**20)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_measured(command: list[str], **kwargs: Any) -> tuple[float, float]:
    """Wall seconds and peak resident MB (VmHWM, read from /proc while it runs) of a command."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    peak = 0.0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            found = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.M)
        except OSError:
            found = None
        if found:
            peak = max(peak, int(found.group(1)) / 1024)
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read().decode() if process.stderr else ''}")
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--family", default="catboost", choices=("catboost", "lightgbm", "xgboost", "random_forest", "linear")
    )
    parser.add_argument("--model", type=Path, help="score with this model file (e.g. models/model.zip) instead")
    parser.add_argument("--pickle", type=Path, help="an older version's pickle of the same model: its size is printed")
    parser.add_argument("--url", help="measure the service already running here instead of starting one")
    args = parser.parse_args()

    from reprotab.data.demo import generate
    from reprotab.model import served
    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run
    from tests.helpers import base_params, serve_command, server, server_env

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model.zip"
        if args.model:
            model.write_bytes(args.model.read_bytes())
        else:
            params = parse_params(base_params(model=args.family))
            served.save(run(generate(rows=5_000, seed=0), params, splits_to_score=()).model, model)
        loaded = served.load(model)
        print(
            f"model: {args.model or 'trained on 5,000 demo rows'} ({loaded.family}, {loaded.estimator_name}, "
            f"{loaded.booster.size()} trees/rounds); {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}"
        )
        loads = []
        for _ in range(20):
            started = time.perf_counter()
            served.load(model)
            loads.append(1000 * (time.perf_counter() - started))
        size = model.stat().st_size
        old = f"; the pickle {args.pickle.stat().st_size:,} bytes" if args.pickle else ""
        print(
            f"model file: {size:,} bytes{old}; load and check p50 {statistics.median(loads):.1f} ms   "
            "[target ≤ 100 ms, no larger than the pickle]"
        )

        if args.rows:
            frame_mb = write_batch(args.rows, work / "batch.parquet")
            command = [sys.executable, "-m", "reprotab", "predict", "--model", str(model)]
            command += ["--input", str(work / "batch.parquet"), "--output", str(work / "scored.parquet")]
            seconds, peak_mb = run_measured(command, cwd=work, env=server_env())
            print(
                f"batch scoring: {args.rows:,} rows in {seconds:.1f}s = {args.rows / seconds:,.0f} rows/s "
                f"(whole process, model load included); peak memory {peak_mb:,.0f} MB, the input frame "
                f"{frame_mb:,.0f} MB   [target ≥ 300,000 rows/s, peak ≤ 2× the frame]"
            )

        if args.url:
            first, then = first_request(args.url)
            print(f"service at {args.url}: first request {first:.1f} ms, then p50 {then:.1f} ms (a Python client)")
            service(args.url, work, args.seconds)
            return
        # 8 connections at once measure throughput, not shedding: more in flight than the default 2
        limits = {"limits": {"max_in_flight": 16, "rate_per_second": None}}
        (work / "params.yaml").write_text(json.dumps(base_params(serve=limits)))
        with server(serve_command(model, "--log-dir", str(work / "log")), cwd=work) as url:
            first, then = first_request(url)
            print(
                f"service: first request after start-up {first:.1f} ms, the next 50 p50 {then:.1f} ms "
                "(a Python client)   [target ≤ 2× p50]"
            )
            service(url, work, args.seconds)


if __name__ == "__main__":
    main()
