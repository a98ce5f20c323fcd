#!/usr/bin/env python3
"""The project's two entry points, needing only Python 3.11+ and git:

    python3 run.py pipeline   # create .venv from requirements.lock (once), then `dvc repro`
    python3 run.py test       # same environment, then the test suite (pytest)

Extra arguments pass through (`python3 run.py test -k prepare`, `python3 run.py pipeline -f`).
`python3 run.py lock` re-resolves pyproject.toml's pins into requirements.lock.
Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements.lock"
STAMP = VENV / ".installed-lock"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _lock_digest() -> str:
    """What the environment was built from: the lock and the project's own metadata (its command)."""
    return hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> None:
    """Create .venv and install the locked dependencies, unless the lock is already installed."""
    if STAMP.exists() and STAMP.read_text() == _lock_digest():
        return
    if not (BIN / "python").exists():
        print(f"run.py: creating {VENV.name} with Python {sys.version.split()[0]}", flush=True)
        venv.create(VENV, with_pip=True)
    print("run.py: installing the locked dependencies (first run only)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--no-deps", "-r", str(LOCK)], check=True)
    # The project itself, editable and without dependencies: installs the `reprotab` command.
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    STAMP.write_text(_lock_digest())


def run(command: list[str]) -> int:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV)}
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def lock() -> int:
    """Resolve pyproject.toml's direct pins (with the dev extra) in a scratch env into requirements.lock."""
    scratch = ROOT / ".venv-lock"
    venv.create(scratch, with_pip=True, clear=True)
    python = str(scratch / BIN.name / "python")
    subprocess.run([python, "-m", "pip", "install", "-q", f"{ROOT}[dev]"], check=True)
    frozen = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude", "reprotab"], check=True, capture_output=True, text=True
    ).stdout
    LOCK.write_text("# Every package at the exact version CI tested. Regenerate: python3 run.py lock\n" + frozen)
    return 0


def main(argv: list[str]) -> int:
    commands = {"pipeline": ["dvc", "repro"], "test": ["python", "-m", "pytest"], "setup": None, "lock": None}
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    name, extra = argv[0], argv[1:]
    if name == "lock":
        return lock()
    ensure_environment()
    if name == "setup":
        return 0
    program = commands[name]
    return run([str(BIN / program[0]), *program[1:], *extra])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
