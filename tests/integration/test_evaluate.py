"""evaluate in a real DVC repository: `dvc plots show` renders every plot dvc.yaml declares, for
binary and regression models. The report's parts: tests/unit/evaluate/test_evaluate.py."""

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import DVC, base_params, sh
from tests.unit.evaluate.test_evaluate import FIGURES, PIPELINE, TASKS

pytestmark = pytest.mark.integration


def test_dvc_plots_show_renders_every_declared_plot_for_binary_and_regression(reproduced, tmp_path):
    """The real dvc: every declared plot loads without error; those of another task are empty.
    The reproduced project is the binary case as shipped; the regression case re-runs it."""
    repo = reproduced
    named = {next(iter(p)) for p in PIPELINE["plots"] if isinstance(p, dict)}
    for kind, other in (("classification", "regression"), ("regression", "classification")):
        if kind == "regression":
            raw = base_params(**TASKS["regression"])
            (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        sh([DVC, "repro"], repo)
        shown = json.loads(sh([DVC, "plots", "show", "--json"], repo).stdout)
        assert not shown.get("errors"), shown.get("errors")
        assert named <= set(shown["data"])
        rendered = {name for name, entries in shown["data"].items() if entries}
        applicable = FIGURES[kind] | {"importance_model", "importance_permutation"}
        assert applicable <= rendered and not rendered & FIGURES[other]
        images = {Path(name).stem for name in rendered if name.startswith("reports/evaluate/figures/")}
        assert images == applicable
        html = tmp_path / f"html-{kind}"
        sh([DVC, "plots", "show", "-o", str(html)], repo)
        assert (html / "index.html").is_file()
