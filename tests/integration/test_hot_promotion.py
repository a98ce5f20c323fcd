"""Hot promotion with a real registry and a real uvicorn process: `reprotab serve --stage prod`
swaps in each new prod version (found by polling the registry's tags, by SIGHUP or by
`POST /admin/reload`), swaps back on a rollback, and keeps serving the old model when the new
bundle fails its checks, while steady traffic sees no failed request and never a response whose
header and body name different versions."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from reprotab.registry import versions as registry
from reprotab.serving.keys import add_key
from tests.helpers import base_params, request_rows, tagged_registry, train_model

pytestmark = pytest.mark.integration
ROWS = request_rows(2)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    good = {"v1.0.0": train_model(root / "a", seed=1), "v1.0.1": train_model(root / "b", seed=2)}
    broken = root / "broken.zip"
    data = bytearray(good["v1.0.1"].read_bytes())
    data[len(data) // 2] ^= 0xFF  # a flipped byte inside a member: the bundle's own digests refuse it
    broken.write_bytes(bytes(data))
    return {**good, "v1.0.2": broken}


def registry_repo(path: Path, bundles: dict[str, Path]) -> Path:
    """A registry of these model files (digests pinned, the gate's yes at each commit), v1.0.0 in prod."""
    tagged_registry(path, {version: bundle.read_bytes() for version, bundle in bundles.items()})
    registry.promote(path, version="v1.0.0", stage="prod")
    return path


class Traffic:
    """Steady /predict traffic in a thread: every answer's status, header version and body version."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url, self.headers = url, headers or {}
        self.answers: list[tuple[int, str | None, str | None]] = []
        self.times: list[float] = []  # when each answer arrived (time.monotonic)
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30, headers=self.headers) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/predict", json={"rows": ROWS})
                    body = response.json()
                    self.answers.append(
                        (response.status_code, response.headers.get("x-model-version"), body.get("model_version"))
                    )
                    self.times.append(time.monotonic())
                except Exception as exc:  # a lost request is a failure too
                    self.failures.append(repr(exc))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def latest(self) -> str | None:
        return self.answers[-1][1] if self.answers else None

    def wait_for(self, version: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.answers)
        while time.monotonic() < deadline:
            if len(self.answers) > seen and self.latest() == version:
                return
            time.sleep(0.05)
        raise AssertionError(f"still serving {self.latest()} after {timeout}s, expected {version}")


def start(repo: Path, *extra: str) -> tuple[list[str], Path]:
    log = repo.parent / f"{repo.name}-log"
    import sys

    command = [sys.executable, "-m", "reprotab", "serve", "--stage", "prod", "--port", "{port}"]
    return [*command, "--log-dir", str(log), *extra], log


def test_polling_swaps_promotions_and_rollbacks_in_and_keeps_serving_through_a_broken_bundle(tmp_path, bundles):
    from tests.helpers import server

    repo = registry_repo(tmp_path / "repo", bundles)
    command, _ = start(repo, "--poll-seconds", "0.2")
    with server(command, cwd=repo) as url, Traffic(url) as traffic:
        traffic.wait_for("v1.0.0")
        registry.promote(repo, version="v1.0.1", stage="prod")
        traffic.wait_for("v1.0.1")
        registry.rollback(repo, stage="prod", reason="test")
        traffic.wait_for("v1.0.0")
        registry.promote(repo, version="v1.0.1", stage="prod")
        traffic.wait_for("v1.0.1")
        registry.rollback(repo, stage="prod", reason="test")
        traffic.wait_for("v1.0.0")
        registry.promote(repo, version="v1.0.2", stage="prod")  # the broken bundle
        deadline = time.monotonic() + 60
        while (meta := httpx.get(f"{url}/metadata").json())["reload"]["outcome"] != "failed":
            assert time.monotonic() < deadline, meta["reload"]
            time.sleep(0.1)
        time.sleep(0.5)  # traffic goes on meanwhile
        metrics = httpx.get(f"{url}/metrics").text
    assert meta["model_version"] == "v1.0.0" and meta["stage"] == "prod"
    assert "is not a valid model bundle" in meta["reload"]["error"]
    assert meta["gate"]["promote"] is True  # the decision at v1.0.0's own commit
    assert 'reprotab_reloads_total{outcome="failed"} 1.0' in metrics
    assert 'reprotab_model_info{role="champion",version="v1.0.0"} 1.0' in metrics
    assert not traffic.failures
    assert {status for status, _, _ in traffic.answers} == {200}
    assert all(header == body for _, header, body in traffic.answers)  # one model per response
    assert {header for _, header, _ in traffic.answers} == {"v1.0.0", "v1.0.1"}
    assert traffic.answers[-1][1] == "v1.0.0"


def test_sighup_and_the_admin_call_reload_when_polling_is_off(tmp_path, bundles):
    from tests.helpers import server

    repo = registry_repo(tmp_path / "repo", bundles)
    keys = tmp_path / "keys.json"
    admin, client = add_key(keys, "ops", ["admin"]), add_key(keys, "app", ["predict", "read"])
    params = tmp_path / "params.yaml"  # steady traffic on one key: no rate limit
    params.write_text(json.dumps(base_params(serve={"limits": {"rate_per_second": None}})))
    command, log = start(repo, "--poll-seconds", "0", "--keys", str(keys), "--params", str(params))
    with server(command, cwd=repo) as url, Traffic(url, {"Authorization": f"Bearer {client}"}) as traffic:
        traffic.wait_for("v1.0.0")
        registry.promote(repo, version="v1.0.1", stage="prod")
        time.sleep(1.0)
        assert traffic.latest() == "v1.0.0"  # nothing polls
        denied = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {client}"})
        assert denied.status_code == 403
        answer = httpx.post(f"{url}/admin/reload", headers={"Authorization": f"Bearer {admin}"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["outcome"] == "swapped"
        assert answer.json()["serving"]["champion"] == "v1.0.1"
        traffic.wait_for("v1.0.1")
        registry.rollback(repo, stage="prod", reason="test")
        pid = int(httpx.get(f"{url}/metadata", headers={"Authorization": f"Bearer {client}"}).json()["pid"])
        os.kill(pid, signal.SIGHUP)
        traffic.wait_for("v1.0.0")
    assert not traffic.failures and {status for status, _, _ in traffic.answers} == {200}
    assert all(header == body for _, header, body in traffic.answers)
    for path in log.glob("*.jsonl"):  # keys never reach the prediction log
        text = path.read_text()
        assert admin not in text and client not in text


def test_the_canary_follows_its_stage_and_retires_once_promoted(tmp_path, bundles):
    """`--canary-stage staging`: a version put in staging starts answering its share; once it is
    promoted to prod (what `reprotab canary decide --apply` does) both stages hold it and every
    request goes to the one model."""
    from tests.helpers import server

    repo = registry_repo(tmp_path / "repo", bundles)
    command, _ = start(repo, "--poll-seconds", "0.2", "--canary-stage", "staging", "--canary-share", "0.5")

    def metadata(url: str, wanted) -> dict:
        """/metadata once `wanted(it)` holds (the poller acts within a second or so)."""
        deadline = time.monotonic() + 60
        while not wanted(meta := httpx.get(f"{url}/metadata").json()):
            assert time.monotonic() < deadline, meta
            time.sleep(0.1)
        return meta

    with server(command, cwd=repo) as url:
        assert httpx.get(f"{url}/metadata").json()["canary"] is None  # staging holds nothing yet
        registry.promote(repo, version="v1.0.1", stage="staging")
        meta = metadata(url, lambda m: m["canary"] is not None)
        routes = {
            httpx.post(f"{url}/predict", json={"rows": ROWS, "request_id": f"c-{i}"}).json()["route"] for i in range(40)
        }
        registry.promote(repo, version="v1.0.1", stage="prod")
        after = metadata(url, lambda m: m["model_version"] == "v1.0.1")
    assert meta["canary"]["version"] == "v1.0.1" and meta["canary"]["share"] == 0.5
    assert routes == {"champion", "canary"}
    assert after["canary"] is None and after["reload"]["sources"] == {
        "champion": "stage prod",
        "canary": "stage staging",
    }
