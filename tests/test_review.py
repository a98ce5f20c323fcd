"""The review report: its pure parts on tiny inline data, then the real CLI on a git + DVC history
(two commits that differ in one param, and a workspace that differs again)."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
import yaml

from reprotab.review import (
    COMMENT_MARKER,
    Plot,
    choose_axes,
    clip_infinite,
    collect_plots,
    confusion_counts,
    curve_points,
    diff_rows,
    find_dvc_root,
    image_names,
    load_errors,
    normalized_by,
    parse_dvc_json,
    plot_kind,
    render,
    report_markdown,
    shares,
)
from tests.conftest import ROOT, sh, tool_env
from tests.test_remote_s3 import reproduced_repo

DVC = str(Path(sys.executable).parent / "dvc")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# What `dvc plots diff a b --json` returns (trimmed): a declared ROC plot with DVC's bare Infinity,
# a normalized confusion matrix, a two-file calibration plot, a bar chart and an image plot.
SHOWN = """{"errors": [{"rev": "a", "type": "DataIndexDirError", "msg": "failed to load directory"}],
"data": {
"roc": [{"type": "vega", "revisions": ["a", "b"], "content": {
  "title": {"text": "ROC (test)"}, "mark": {"type": "line"},
  "encoding": {"x": {"field": "fpr", "title": "false positive rate"}, "y": {"field": "tpr"}},
  "data": {"values": [
    {"fpr": 0.0, "tpr": 0.0, "threshold": Infinity, "rev": "a"},
    {"fpr": 0.5, "tpr": 0.75, "threshold": 0.6, "rev": "a"},
    {"fpr": 1.0, "tpr": 1.0, "threshold": 0.1, "rev": "a"},
    {"fpr": 0.0, "tpr": 0.0, "threshold": Infinity, "rev": "b"},
    {"fpr": 1.0, "tpr": 1.0, "threshold": 0.2, "rev": "b"}]}}}],
"confusion_normalized": [{"type": "vega", "content": {
  "title": {"text": "Shares"},
  "spec": {"transform": [{"joinaggregate": [{"op": "sum", "field": "xy_count", "as": "sum_y"}],
                          "groupby": ["predicted"]}],
           "encoding": {"x": {"field": "actual"}, "y": {"field": "predicted"}},
           "layer": [{"mark": "rect"}, {"mark": "text"}]},
  "data": {"values": [{"actual": "no", "predicted": "no", "rev": "a"},
                      {"actual": "yes", "predicted": "no", "rev": "b"}]}}}],
"calibration": [{"type": "vega", "content": {
  "mark": {"type": "line"}, "encoding": {"x": {"field": "prob_pred"}, "y": {"field": "prob_true"}},
  "data": {"values": [
    {"prob_pred": 0.1, "prob_true": 0.2, "filename": "calibration.json", "rev": "b"},
    {"prob_pred": 0.1, "prob_true": 0.1, "filename": "calibration_uncalibrated.json", "rev": "b"}]}}}],
"importance": [{"type": "vega", "content": {
  "mark": {"type": "bar"}, "encoding": {"x": {"field": "importance"}, "y": {"field": "feature"}},
  "data": {"values": [{"feature": "age", "importance": 0.7, "rev": "a"},
                      {"feature": "age", "importance": 0.6, "rev": "b"}]}}}],
"reports/evaluate/figures/roc.png": [{"type": "image", "revisions": ["a"], "url": "/tmp/a_roc.png"}]
}}"""


def test_parse_dvc_json_reads_bare_infinity_and_nan():
    parsed = parse_dvc_json('{"t": [Infinity, -Infinity, NaN, 0.5]}')
    assert parsed["t"][:2] == [math.inf, -math.inf] and math.isnan(parsed["t"][2]) and parsed["t"][3] == 0.5


def test_clip_infinite_uses_the_fields_finite_extremes():
    rows = [
        {"threshold": math.inf, "fpr": 0.0, "rev": "a", "flag": True},
        {"threshold": 0.7, "fpr": 0.5, "rev": "a", "flag": False},
        {"threshold": -math.inf, "fpr": 1.0, "rev": "a", "flag": True},
        {"threshold": 0.1, "only_inf": math.inf, "rev": "a"},
    ]
    clipped = clip_infinite(rows)
    assert [row["threshold"] for row in clipped] == [0.7, 0.7, 0.1, 0.1]
    assert clipped[3]["only_inf"] is None
    assert [row.get("flag") for row in clipped] == [True, False, True, None]
    assert rows[0]["threshold"] == math.inf  # the input is not changed


@pytest.mark.parametrize(
    ("content", "rows", "axes"),
    [
        (
            {"encoding": {"x": {"field": "fpr"}, "y": {"field": "tpr"}}},
            [{"fpr": 0, "tpr": 0, "rev": "a"}],
            ("fpr", "tpr"),
        ),
        (
            {"spec": {"encoding": {"x": {"field": "actual"}, "y": {"field": "predicted"}}}},
            [{"actual": "a", "predicted": "b"}],
            ("actual", "predicted"),
        ),
        ({"encoding": {"x": {"field": "step"}}}, [{"recall": 1, "precision": 0.5, "step": 0}], ("recall", "precision")),
        ({"encoding": {"x": {"field": "step"}}}, [{"step": 0, "loss": 0.3, "rev": "a"}], ("step", "loss")),
        ({}, [{"step": 0, "loss": 0.3, "accuracy": 0.9}], None),
    ],
)
def test_choose_axes(content, rows, axes):
    assert choose_axes(content, rows) == axes


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ({"mark": {"type": "line"}}, "curve"),
        ({"mark": "point"}, "scatter"),
        ({"layer": [{"mark": "point"}, {"mark": {"type": "line"}}]}, "curve"),
        ({"mark": {"type": "bar"}}, "bar"),
        ({"spec": {"layer": [{"mark": "rect"}, {"mark": "text"}]}}, "confusion"),
        ({}, "confusion"),  # no marks: text on both axes
    ],
)
def test_plot_kind_follows_the_templates_marks(content, kind):
    assert plot_kind(content, [{"a": "x", "p": "y"}], x="a", y="p") == kind


def test_normalized_by_reads_the_templates_sum_groupby():
    shown = parse_dvc_json(SHOWN)["data"]
    assert normalized_by(shown["confusion_normalized"][0]["content"]) == "predicted"
    assert normalized_by(shown["roc"][0]["content"]) is None


def test_collect_plots_splits_revisions_clips_infinity_and_skips_images():
    plots = {plot.key: plot for plot in collect_plots(parse_dvc_json(SHOWN), revisions=["a", "b"])}
    assert list(plots) == ["roc", "confusion_normalized", "calibration", "importance"]
    roc = plots["roc"]
    assert (roc.title, roc.x, roc.y, roc.kind, roc.labels) == (
        "ROC (test)",
        "fpr",
        "tpr",
        "curve",
        ("false positive rate", ""),
    )
    assert [row["threshold"] for row in roc.rows["a"]] == [0.6, 0.6, 0.1]
    assert [row["threshold"] for row in roc.rows["b"]] == [0.2, 0.2]
    confusion = plots["confusion_normalized"]
    assert (confusion.kind, confusion.normalize_by, confusion.title) == ("confusion", "predicted", "Shares")
    assert list(plots["calibration"].rows) == ["b"]  # only revisions with data
    assert plots["importance"].kind == "bar"


def test_load_errors_names_each_unreadable_revision_once():
    stderr = [
        "WARNING: failed to load metrics in revision 'a', config file error\nDVC failed to load some metrics",
        "WARNING: failed to load metrics in revision 'a', config file error\n",
    ]
    notes = load_errors(parse_dvc_json(SHOWN), stderr)
    assert len(notes) == 2
    assert notes[0].startswith("Plots of `a` could not be loaded (DataIndexDirError: failed to load directory)")
    assert notes[1] == "failed to load metrics in revision 'a', config file error"


def test_curve_points_drop_missing_and_non_finite_values():
    rows = [{"x": 0, "y": 1}, {"x": math.nan, "y": 1}, {"x": 1, "y": None}, {"x": 2, "y": math.inf}, {"x": 3, "y": 4}]
    assert curve_points(rows, x="x", y="y") == ([0, 3], [1, 4])


def test_confusion_counts_rows_are_predicted_columns_are_actual_and_shares_normalize_either_way():
    rows = [
        {"actual": "no", "predicted": "no"},
        {"actual": "no", "predicted": "no"},
        {"actual": "yes", "predicted": "no"},
        {"actual": "yes", "predicted": "yes"},
    ]
    labels, counts = confusion_counts(rows, x="actual", y="predicted")
    assert (labels, counts) == (["no", "yes"], [[2, 1], [0, 1]])
    assert confusion_counts(rows[:1], x="actual", y="predicted", labels=["no", "yes"]) == (
        ["no", "yes"],
        [[1, 0], [0, 0]],
    )
    assert shares(counts, along="y") == [[2 / 3, 1 / 3], [0.0, 1.0]]
    assert shares(counts, along="x") == [[1.0, 0.5], [0.0, 0.5]]
    assert shares([[0, 0], [0, 1]], along="y") == [[0.0, 0.0], [0.0, 1.0]]  # an empty row stays 0


def test_image_names_are_short_unless_stems_collide():
    assert image_names(["roc", "reports/evaluate/plots/sklearn/precision_recall.json"]) == {
        "roc": "roc.png",
        "reports/evaluate/plots/sklearn/precision_recall.json": "precision_recall.png",
    }
    names = image_names(["reports/evaluate/plots/sklearn/roc.json", "reports/evaluate/plots/calib/roc.json"])
    assert names == {
        "reports/evaluate/plots/sklearn/roc.json": "sklearn-roc.png",
        "reports/evaluate/plots/calib/roc.json": "calib-roc.png",
    }


METRICS_MD = """| Path | Metric | a | b | Change |
|------|--------|---|---|--------|
| m.json | test.roc_auc | 0.8 | 0.85 | 0.05 |
"""
EMPTY_MD = "| Path | Param | a | b |\n|------|-------|---|---|\n"


def test_report_markdown_embeds_images_or_links_to_them():
    assert (diff_rows(METRICS_MD), diff_rows(EMPTY_MD), diff_rows("")) == (1, 0, 0)
    images = [("ROC (test)", "roc.png")]
    report = report_markdown(base="a", head="b", metrics=METRICS_MD, params=EMPTY_MD, images=images, notes=["n1"])
    assert "| m.json | test.roc_auc | 0.8 | 0.85 | 0.05 |" in report
    assert "No param changed between `a` and `b`." in report
    assert "![ROC (test)](roc.png)" in report
    assert report.rstrip().endswith("- n1")
    comment = report_markdown(
        base="a", head="b", metrics=METRICS_MD, params=EMPTY_MD, images=images, images_url="https://ci/run/7"
    )
    assert "![" not in comment and "[this workflow run](https://ci/run/7)" in comment and "`roc.png`" in comment
    none = report_markdown(base="a", head="b", metrics=EMPTY_MD, params=EMPTY_MD, images=[])
    assert "No metric changed" in none and "No plots to compare" in none


def test_render_draws_every_kind_with_one_panel_per_revision(tmp_path):
    plots = collect_plots(parse_dvc_json(SHOWN), revisions=["a", "b"])
    scatter = {"a": [{"p": 1.0, "r": 0.5}, {"p": 2.0, "r": -0.5}], "b": [{"p": 1.5, "r": math.nan}]}
    plots.append(Plot("residuals", "Residuals", "p", "r", "scatter", scatter))
    for plot in plots:
        render(plot, revisions=["a", "b"], path=tmp_path / f"{plot.key}.png")
        image = tmp_path / f"{plot.key}.png"
        assert image.read_bytes().startswith(PNG_MAGIC)
        height, width = matplotlib.image.imread(image).shape[:2]
        panels = len(plot.rows)
        assert (width > 1.5 * height) == (panels == 2), plot.key  # two panels side by side, or one


def test_find_dvc_root_walks_up(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "a/b").mkdir(parents=True)
    assert find_dvc_root(tmp_path / "a/b") == tmp_path
    assert find_dvc_root(tmp_path.parent) is None


def review(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "reprotab", "review", *args], cwd, check=check)


@pytest.mark.parametrize(
    ("make_dvc_folder", "message"),
    [
        (False, "review: must run inside a DVC repository. Got '{cwd}'."),
        (True, "review: needs a git repository to compare revisions. Got '{cwd}'."),
    ],
)
def test_outside_a_git_and_dvc_repository_is_a_user_error(tmp_path, make_dvc_folder, message):
    if make_dvc_folder:
        (tmp_path / ".dvc").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "reprotab", "review", "--base", "HEAD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=tool_env({"PYTHONPATH": str(ROOT), "GIT_CEILING_DIRECTORIES": str(tmp_path.parent)}),
    )
    assert result.returncode == 2
    assert message.format(cwd=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


def set_sampler(repo: Path, sampler: str) -> None:
    """A top-level key that re-runs only train and evaluate and changes every test metric."""
    params = repo / "params.yaml"
    params.write_text(re.sub(r"(?m)^sampler: \w+", f"sampler: {sampler}", params.read_text()))
    assert yaml.safe_load(params.read_text())["sampler"] == sampler


def commit(repo: Path, message: str) -> str:
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", message], repo)
    return sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The reproduced project (no class balancing), then a second reproduced commit with random
    undersampling: two commits whose every test metric differs."""
    repo = reproduced_repo(tmp_path_factory, "review")
    assert yaml.safe_load((repo / "params.yaml").read_text())["sampler"] == "none"
    first = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    set_sampler(repo, "random_under")
    sh([DVC, "repro"], repo)
    second = commit(repo, "undersampled")
    return repo, first, second


def table_row(report: str, name: str) -> list[str]:
    """The cells of the diff-table row whose second column (Metric or Param) is `name`."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in report.splitlines()]
    return next(cells for cells in rows if len(cells) > 1 and cells[1] == name)


def stored_metrics(repo: Path, rev: str) -> dict:
    return json.loads(sh(["git", "show", f"{rev}:reports/evaluate/metrics.json"], repo).stdout)


def assert_report(repo: Path, *, base: str, head: str, old: dict, new: dict, samplers: tuple[str, str]) -> None:
    out = repo / "reports/review"
    report = (out / "report.md").read_text()
    assert report.startswith(f"## Experiment review: `{base}` → `{head}`")
    _, _, shown_old, shown_new, change = table_row(report, "test.roc_auc")
    assert old["test"]["roc_auc"] != new["test"]["roc_auc"]
    assert float(shown_old) == pytest.approx(old["test"]["roc_auc"], abs=1e-5)
    assert float(shown_new) == pytest.approx(new["test"]["roc_auc"], abs=1e-5)
    assert float(change) == pytest.approx(new["test"]["roc_auc"] - old["test"]["roc_auc"], abs=2e-5)
    assert table_row(report, "sampler")[1:] == ["sampler", *samplers]
    images = [line.split("](")[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    for key_plot in ("roc", "precision_recall", "confusion_matrix"):
        assert f"{key_plot}.png" in images
    for name in images:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
        height, width = matplotlib.image.imread(out / name).shape[:2]
        assert width > 1.5 * height, f"{name} should show both revisions side by side"
    assert "### Notes" not in report


@pytest.mark.integration
def test_review_between_two_commits(history):
    repo, first, second = history
    review(repo, "--base", first, "--head", second)
    old, new = (stored_metrics(repo, rev) for rev in (first, second))
    assert_report(repo, base=first, head=second, old=old, new=new, samplers=("none", "random_under"))


@pytest.mark.integration
def test_review_between_a_commit_and_the_workspace(history):
    """The workspace goes back to the first commit's results, uncommitted (tracked files from git,
    outputs from the DVC cache), and is reviewed against the last commit."""
    repo, first, second = history
    sh(["git", "checkout", first, "--", "."], repo)
    sh([DVC, "checkout"], repo)
    review(repo, "--base", second, "--artifact-url", "https://ci.example/runs/1")
    workspace = json.loads((repo / "reports/evaluate/metrics.json").read_text())
    assert workspace == stored_metrics(repo, first)
    assert_report(
        repo,
        base=second,
        head="workspace",
        old=stored_metrics(repo, second),
        new=workspace,
        samplers=("random_under", "none"),
    )
    comment = (repo / "reports/review/comment.md").read_text()
    assert comment.splitlines()[0] == COMMENT_MARKER  # the workflow finds its own comment by it
    assert "(https://ci.example/runs/1)" in comment and "![" not in comment


@pytest.mark.integration
def test_unknown_revision_is_a_user_error(history):
    repo, _, _ = history
    result = review(repo, "--base", "no-such-branch", check=False)
    assert result.returncode == 2
    assert "--base: is not a git revision of this repository. Got 'no-such-branch'." in result.stderr
    assert "Traceback" not in result.stderr
