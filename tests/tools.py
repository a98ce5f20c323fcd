"""Command-line tools the tests run that come from Debian packages rather than from PyPI: found on
PATH, or installed with apt-get when the tests run as root (a fresh CI machine or container), or
else a failure naming the package. Never a skip: a check that did not run must not look passed."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` first when it is missing (as root)."""
    found = shutil.which(binary)
    if found:
        return found
    apt_get = shutil.which("apt-get")
    if apt_get is None or os.geteuid() != 0:
        pytest.fail(
            f"{binary} is not installed: install the Debian package {package!r} "
            f"(sudo apt-get install --no-install-recommends {package})",
            pytrace=False,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]  # another test worker may be installing at the same time
    install = [apt_get, *wait, "install", "-y", "--no-install-recommends", package]
    done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:  # most often stale or missing package lists: refresh them once and retry
        update = subprocess.run([apt_get, *wait, "update"], env=env, capture_output=True, text=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(
                f"apt-get could not install {package!r} for {binary}:\n{update.stderr}{done.stdout}{done.stderr}",
                pytrace=False,
            )
    found = shutil.which(binary)
    if found is None:
        pytest.fail(f"the Debian package {package!r} installed, but {binary} is not on PATH", pytrace=False)
    return found
