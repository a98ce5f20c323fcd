"""The retraining walkthrough of the docs' Monthly retraining page runs verbatim: every command between its
`<!-- walkthrough:start -->` and `<!-- walkthrough:end -->` markers, in order, in a fresh copy of the
project with the full demo table, each checked against the `#> ...` lines under it. The page cannot
drift from what the loop does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, make_repo, tool_env

pytestmark = pytest.mark.integration
PAGE = ROOT / "docs/operations/retraining.md"


def steps(text: str) -> list[tuple[str, list[str]]]:
    """(command, expectations) in page order, from the bash blocks between the markers."""
    section = re.search(r"<!-- walkthrough:start -->(.*?)<!-- walkthrough:end -->", text, re.S)
    assert section, f"{PAGE} has no walkthrough markers"
    found: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```bash\n(.*?)```", section[1], re.S):
        for line in block.splitlines():
            if line.startswith("#> "):
                assert found, f"an expectation before any command: {line}"
                found[-1][1].append(line[3:])
            elif line.strip() and not line.startswith("#"):
                found.append((line, []))
    return found


def test_the_page_parses_into_commands_with_expectations():
    parsed = steps(PAGE.read_text(encoding="utf-8"))
    assert len(parsed) >= 20 and sum(bool(e) for _, e in parsed) >= 8


def test_the_walkthrough_runs_verbatim(tmp_path):
    repo = make_repo(tmp_path / "project", rows=None)
    env = tool_env({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    for command, expected in steps(PAGE.read_text(encoding="utf-8")):
        result = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, f"{command}\n{output}"
        status = next((int(e.split()[1]) for e in expected if re.fullmatch(r"exit \d+", e)), 0)
        assert result.returncode == status, f"{command}: exit {result.returncode}, expected {status}\n{output[-3000:]}"
        for text in expected:
            if text == "(no output)":
                assert result.stdout == "", f"{command} printed:\n{result.stdout}"
            elif not re.fullmatch(r"exit \d+", text):
                assert text in output, f"{command}: {text!r} not in its output:\n{output[-3000:]}"
