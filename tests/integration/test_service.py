"""The HTTP service as a real uvicorn process on 127.0.0.1: it predicts and reports, loses nothing
under 50 concurrent clients, and exits 2 before serving a bad model or an unusable port."""

from __future__ import annotations

import pickle
import random
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from reprotab.serving import prediction_log
from tests.helpers import free_port, request_rows, serve_command, server, server_env

pytest_plugins = ["tests.service_fixtures"]  # models, champion, challenger, client
pytestmark = pytest.mark.integration


ROWS = request_rows(3)


# --- a real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(models, tmp_path_factory):
    """`reprotab serve` with a 30% canary, as a real uvicorn process on 127.0.0.1."""
    work = tmp_path_factory.mktemp("live")
    args = serve_command(
        models[0], "--canary-model", str(models[1]), "--canary-share", "0.3", "--log-dir", str(work / "log")
    )
    with server(args, cwd=work) as url:
        yield url, work / "log"


def test_live_server_predicts_and_reports(live, champion):
    url, _ = live
    answer = httpx.post(f"{url}/predict", json={"rows": ROWS, "request_id": "live-1"}, timeout=30)
    assert answer.status_code == 200 and answer.json()["request_id"] == "live-1"
    assert httpx.post(f"{url}/predict", content=b"{", timeout=30).status_code == 422
    assert httpx.get(f"{url}/metadata").json()["canary"]["share"] == 0.3
    assert "reprotab_requests_total" in httpx.get(f"{url}/metrics").text


def test_load_50_concurrent_clients_lose_nothing(live):
    """Every request is answered: shed ones (503) are retried by the client, and every answered
    one is logged once."""
    url, log_dir = live
    clients, per_client, deadline = 50, 8, time.monotonic() + 300  # ~15 s on an idle 2-core machine
    statuses: list[int] = []
    failures: list[str] = []
    shed: list[int] = []  # 503s: with 50 clients at once the default max_in_flight (2) sheds most
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for i in range(per_client):
                if time.monotonic() > deadline:
                    return
                try:
                    body = {"rows": ROWS[: 1 + i % 3], "request_id": f"load-{n}-{i}"}
                    while (status := http.post("/predict", json=body)).status_code == 503:  # shed: retry soon
                        assert status.headers["retry-after"] == "1" and status.json()["detail"][0]["error"]
                        with lock:
                            shed.append(n)
                        time.sleep(random.uniform(0.005, 0.05))
                    with lock:
                        statuses.append(status.status_code)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic() + 60))
    assert not failures
    assert len(statuses) == clients * per_client, "hit the time cap"
    assert set(statuses) == {200} and shed
    logged = {r["request_id"] for r in prediction_log.read(log_dir) if r["request_id"].startswith("load-")}
    assert len(logged) == clients * per_client


@pytest.mark.parametrize(
    "content,message",
    [
        (b"not a model bundle", "is not a valid model bundle"),
        (pickle.dumps({"format_version": 2}), "is a pickle from an older version"),
        (None, "file not found"),
    ],
    ids=["corrupt", "pickle", "missing"],
)
def test_a_model_that_fails_to_load_exits_2_before_serving(tmp_path, content, message):
    model = tmp_path / "model.zip"
    if content is not None:
        model.write_bytes(content)
    result = subprocess.run(
        [sys.executable, "-m", "reprotab", "serve", "--model", str(model), "--port", str(free_port())],
        cwd=tmp_path,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("port", ["busy", "70000"])
def test_a_port_that_cannot_be_bound_exits_2_before_listening(models, tmp_path, port):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        asked = str(busy) if port == "busy" else port
        result = subprocess.run(
            [sys.executable, "-m", "reprotab", "serve", "--model", str(models[0]), "--port", asked],
            cwd=tmp_path,
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    expected = f"cannot listen on 127.0.0.1:{busy} (" if port == "busy" else "must be between 1 and 65535"
    assert f"--port: {expected}" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "listening on" not in result.stderr
