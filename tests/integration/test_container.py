"""The container image: Dockerfile lint, the serving lock, and the image's own CMD run for real.

There is no Docker engine in CI, so the image is checked by parts: hadolint on the Dockerfile,
the serving lock against requirements.lock, and the exact CMD started in a directory laid out
as the image's /app, with every package outside the serving lock made unimportable. The CMD
listens on 0.0.0.0 and reads a mounted key file; here it listens on 127.0.0.1 (a test never
listens on other interfaces) and reads a key file made in the test's own directory."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reprotab.serving.keys import add_key
from tests.helpers import ROOT, free_port, request_rows, server_env, train_model

pytestmark = pytest.mark.integration

DOCKERFILE = ROOT / "Dockerfile"
KEY_FILE = "/run/secrets/reprotab-keys.json"  # where the image's CMD reads its API keys (a mounted file)
BLOCKER = """
import importlib.abc, importlib.metadata as md, re, sys
lock = {re.sub(r"[-_.]+", "-", l.split("==")[0]).lower()
        for l in open(%(lock)r) if l.strip() and not l.startswith("#")}
blocked = {top for top, dists in md.packages_distributions().items()
           if top not in sys.stdlib_module_names and top != "reprotab"
           and not any(re.sub(r"[-_.]+", "-", d).lower() in lock for d in dists)}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not in the serving lock", name=name)
sys.meta_path.insert(0, Block())
"""


def pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pairs = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


def image_cmd() -> list[str]:
    return json.loads(next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD "))[4:])


def image_app(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the image's /app (the package and a model) and the environment that makes every
    package outside the serving lock unimportable."""
    app = tmp_path / "app"
    shutil.copytree(ROOT / "reprotab", app / "reprotab", ignore=shutil.ignore_patterns("__pycache__"))
    train_model(app / "models")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER % {"lock": str(ROOT / "requirements-serve.lock")})
    return app, {**server_env(), "PYTHONPATH": str(site)}


def local_cmd(app: Path, port: int, keys: Path) -> list[str]:
    """The image's CMD with this machine's paths: the interpreter, the model, the key file; and
    127.0.0.1 for 0.0.0.0."""
    command = image_cmd()
    command[0] = sys.executable
    command[command.index("/app/models/model.zip")] = str(app / "models/model.zip")
    command[command.index(KEY_FILE)] = str(keys)
    command[command.index("0.0.0.0")] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    return command


def test_serving_lock_is_a_subset_of_requirements_lock_at_the_same_versions():
    serve, full = pins(ROOT / "requirements-serve.lock"), pins(ROOT / "requirements.lock")
    assert {"fastapi", "uvicorn", "scikit-learn", "pandas", "pyarrow", "prometheus-client"} <= set(serve)
    assert {name: version for name, version in serve.items() if full.get(name) != version} == {}
    assert not {"dvc", "optuna", "matplotlib", "dvclive", "mlflow-skinny"} & set(serve)


def test_dockerfile_lints_clean_and_has_the_promised_shape():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), "--config", ".hadolint.yaml", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert len(stages) == 2 and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", s) for s in stages)
    assert re.search(r"^USER \d+:\d+$", text, flags=re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD \[\"python\"", text, flags=re.M)
    assert "/health" in text and "requirements-serve.lock" in text
    assert image_cmd() == [
        *("python", "-m", "reprotab", "serve", "--model", "/app/models/model.zip"),
        *("--host", "0.0.0.0", "--port", "8000", "--keys", KEY_FILE),
    ]
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!reprotab/" in ignored  # the build context is only what the image copies


def test_the_image_cmd_serves_with_only_the_serving_lock(tmp_path):
    """The CMD, run in a copy of the image's /app with packages outside the lock unimportable,
    with a real key file: /health is open, /predict needs the key."""
    app, env = image_app(tmp_path)
    keys = tmp_path / "secrets/reprotab-keys.json"
    key = add_key(keys, "app", ["predict", "read"])
    keys.chmod(0o600)
    port = free_port()
    command = local_cmd(app, port, keys)
    process = subprocess.Popen(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                pytest.fail(f"the image's CMD exited {process.returncode}:\n{process.stdout.read()}")
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("the image's CMD did not become ready")
        health = httpx.get(f"{url}/health")  # the HEALTHCHECK's request: no key
        assert health.status_code == 200 and health.json()["status"] == "ok"
        body = {"rows": request_rows(2)}
        refused = httpx.post(f"{url}/predict", json=body, timeout=30)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        answer = httpx.post(f"{url}/predict", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (app / "logs/predictions").is_dir()  # the default log dir, relative to WORKDIR /app


def test_the_image_cmd_without_its_key_file_stops_before_listening(tmp_path):
    """Nothing mounted at the key file's path: exit 2 with one message saying the file is missing
    and how to make one, before the port is bound."""
    app, env = image_app(tmp_path)
    missing = tmp_path / "secrets/reprotab-keys.json"
    result = subprocess.run(
        local_cmd(app, free_port(), missing), cwd=app, env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"{missing}: no API key file here" in output
    assert "reprotab serve keys add" in output
    assert "listening on" not in output and "Traceback" not in output
