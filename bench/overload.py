"""Overload the service on purpose and print what every request got: open-loop load at a multiple
of the measured capacity, bounded in time, on 127.0.0.1.

    .venv/bin/python bench/overload.py [--model models/model.zip] [--rows 100] [--factor 4]
                                       [--seconds 20] [--max-in-flight 8]

1. Starts `reprotab serve` (a real uvicorn process) with `serve.limits.max_in_flight` set, no rate
   limit (one client here: shedding is what is measured) and the prediction log on.
2. Capacity: wrk (Debian's `wrk`, closed loop, 8 connections or max_in_flight if fewer, 5 s)
   on --rows-row requests.
3. Unloaded: open-loop at a quarter of capacity for 10 s: its p99 is the reference.
4. Overload: open-loop at --factor × capacity for --seconds. Open loop: each request is sent at
   its scheduled time whatever the earlier ones are doing (a new connection when none is idle),
   and its latency counts from that time, so a slow service cannot slow the generator down and
   hide its own queue (coordinated omission).
Prints the answers by status, requests lost (no answer: a connection error or no answer within
30 s), p50/p99 of the admitted (200) requests against 2× the unloaded p99, and the service's
peak resident memory sampled every 0.2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serving import percentile, wrk  # noqa: E402


class OpenLoop:
    """Sends `rate` requests a second for `seconds` on a pool of keep-alive connections."""

    def __init__(self, port: int, body: bytes, *, max_connections: int = 2_000) -> None:
        self.port, self.max_connections = port, max_connections
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        # idle connections, oldest first: reused in turn, so none sits past the server's keep-alive
        # timeout (5 s) and gets closed under the generator, which would count as a lost request
        self.idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
        self.opened = 0
        self.results: list[tuple[int, float]] = []  # (status or 0 for lost, seconds from schedule)
        self.unsent = 0
        self.errors: dict[str, int] = {}  # why a request got no answer

    async def _one(self, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            if self.idle:
                reader, writer = self.idle.popleft()
            elif self.opened < self.max_connections:
                self.opened += 1
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            else:
                self.unsent += 1
                return
            writer.write(self.request)
            status, close = await asyncio.wait_for(self._response(reader), 30)
            self.results.append((status, loop.time() - scheduled))
            if close:  # the server ends the connection (a refusal sent before the body was read)
                writer.close()
                self.opened -= 1
            else:
                self.idle.append((reader, writer))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, StopIteration) as exc:
            self.results.append((0, loop.time() - scheduled))
            self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1

    @staticmethod
    async def _response(reader: asyncio.StreamReader) -> tuple[int, bool]:
        """The status, and whether the server closes the connection after this answer."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").lower().split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:"))
        await reader.readexactly(length)
        return status, "connection: close" in lines

    async def run(self, rate: float, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        start, tasks, n = loop.time(), [], 0
        while (scheduled := start + n / rate) < start + seconds:
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._one(scheduled)))
            n += 1
        await asyncio.gather(*tasks)
        for _, writer in self.idle:
            writer.close()


def open_loop(port: int, body: bytes, rate: float, seconds: float) -> OpenLoop:
    generator = OpenLoop(port, body)
    try:
        import uvloop

        uvloop.run(generator.run(rate, seconds))
    except ImportError:
        asyncio.run(generator.run(rate, seconds))
    return generator


class Memory:
    """Peak resident memory of a process, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def report(label: str, generator: OpenLoop, rate: float, seconds: float) -> list[float]:
    statuses: dict[int, int] = {}
    for status, _ in generator.results:
        statuses[status] = statuses.get(status, 0) + 1
    admitted = [t * 1000 for status, t in generator.results if status == 200]
    sent = len(generator.results) + generator.unsent
    print(f"{label}: {rate:,.0f} req/s for {seconds:g} s = {sent:,} requests on {generator.opened} connections")
    shown = ", ".join(f"{s if s else 'lost'}: {c:,}" for s, c in sorted(statuses.items()))
    print(f"  answers: {shown}; never sent (generator's connection cap): {generator.unsent}")
    if generator.errors:
        print(f"  no answer because: {generator.errors}")
    if admitted:
        p50, p99 = percentile(admitted, 0.5), percentile(admitted, 0.99)
        print(f"  admitted (200): p50 {p50:.1f} ms, p99 {p99:.1f} ms, {len(admitted) / seconds:,.0f} req/s")
    return admitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models/model.zip"))
    parser.add_argument("--rows", type=int, default=100, help="rows per request")
    parser.add_argument("--factor", type=float, default=4.0, help="overload: this many times capacity")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-in-flight", type=int, default=None, help="default: params.yaml's")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench/overload.py needs wrk for the capacity: apt-get install wrk")
    import httpx
    import yaml

    from tests.helpers import free_port, request_rows

    rows = request_rows(args.rows)
    body = json.dumps({"rows": rows}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["serve"]["limits"]["rate_per_second"] = None
        if args.max_in_flight:
            params["serve"]["limits"]["max_in_flight"] = args.max_in_flight
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        port = free_port()
        command = [sys.executable, "-m", "reprotab", "serve", "--model", args.model, "--port", str(port)]
        command += ["--params", str(work / "params.yaml"), "--log-dir", str(work / "log")]
        server = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            limits = httpx.get(f"{url}/metadata").json()["limits"]
            print(f"model {args.model}, {args.rows} rows a request, limits {limits}")
            connections = min(8, limits["max_in_flight"])  # more would be shed, not measured
            capacity = wrk(url, rows, connections, 5, work)
            assert capacity is not None
            rate = capacity["rps"]
            print(f"capacity (wrk, {connections} connections, 5 s): {rate:,.0f} req/s, p50 {capacity['p50']:.1f} ms")
            memory = Memory(server.pid)
            quiet = report("unloaded (¼ capacity, open loop)", open_loop(port, body, rate / 4, 10), rate / 4, 10)
            reference = percentile(quiet, 0.99)
            loaded = open_loop(port, body, rate * args.factor, args.seconds)
            admitted = report(
                f"overload ({args.factor:g}× capacity, open loop)", loaded, rate * args.factor, args.seconds
            )
            peak = memory.stop()
            p99 = percentile(admitted, 0.99) if admitted else float("nan")
            lost = sum(1 for status, _ in loaded.results if status not in (200, 429, 503)) + loaded.unsent
            print(
                f"  every request answered 200/429/503: {'yes' if lost == 0 else f'NO, {lost} not'}   "
                f"[target: none lost]\n"
                f"  admitted p99 {p99:.1f} ms vs 2 × unloaded p99 = {2 * reference:.1f} ms   "
                f"[target: ≤; {'met' if p99 <= 2 * reference else 'missed'}]\n"
                f"  service peak memory {peak / 2**20:,.0f} MB over both runs   [target: bounded]"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
