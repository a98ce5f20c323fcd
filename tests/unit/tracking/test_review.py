"""The review report: its pure parts on tiny inline data. The real CLI on a git + DVC history is
tests/integration/test_review.py."""

import json
import math
from pathlib import Path

from reprotab.tracking.review import (
    collect_plots,
    diff_rows,
    find_dvc_root,
    image_names,
    json_safe,
    load_errors,
    parse_dvc_json,
    render,
    report_markdown,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# with DVC's bare Infinity threshold, a confusion matrix faceted by revision with its "show values"
# checkbox, a two-file calibration plot, a bar chart without a title, and an image plot.
SHOWN = """{"errors": [{"rev": "a", "type": "DataIndexDirError", "msg": "failed to load directory"}],
"data": {
"roc": [{"type": "vega", "revisions": ["a", "b"], "content": {
  "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
  "title": {"text": "ROC (test)", "anchor": "middle"}, "width": 300, "height": 300,
  "params": [{"name": "grid", "select": "interval", "bind": "scales"}],
  "mark": {"type": "line"},
  "encoding": {"x": {"field": "fpr", "type": "quantitative", "title": "false positive rate"},
               "y": {"field": "tpr", "type": "quantitative"},
               "color": {"field": "rev", "scale": {"domain": ["a", "b"], "range": ["#945dd6", "#13adc7"]}}},
  "data": {"values": [
    {"fpr": 0.0, "tpr": 0.0, "threshold": Infinity, "rev": "a"},
    {"fpr": 0.5, "tpr": 0.75, "threshold": 0.6, "rev": "a"},
    {"fpr": 1.0, "tpr": 1.0, "threshold": 0.1, "rev": "a"},
    {"fpr": 0.0, "tpr": 0.0, "threshold": Infinity, "rev": "b"},
    {"fpr": 1.0, "tpr": 1.0, "threshold": 0.2, "rev": "b"}]}}}],
"confusion_matrix": [{"type": "vega", "content": {
  "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
  "title": {"text": "Confusion matrix"}, "facet": {"column": {"field": "rev", "sort": []}, "row": {}},
  "params": [{"name": "showValues", "bind": {"input": "checkbox"}}],
  "spec": {"transform": [{"aggregate": [{"op": "count", "as": "xy_count"}], "groupby": ["predicted", "actual"]}],
           "encoding": {"x": {"field": "actual", "type": "nominal"}, "y": {"field": "predicted", "type": "nominal"}},
           "layer": [{"mark": "rect", "width": 300, "height": 300,
                      "encoding": {"color": {"field": "xy_count", "type": "quantitative"}}},
                     {"mark": "text", "encoding": {"text": {"condition":
                        {"param": "showValues", "field": "xy_count", "type": "quantitative"}}}}]},
  "data": {"values": [{"actual": "no", "predicted": "no", "rev": "a"},
                      {"actual": "yes", "predicted": "no", "rev": "b"}]}}}],
"calibration": [{"type": "vega", "content": {
  "$schema": "https://vega.github.io/schema/vega-lite/v5.json", "title": "Calibration",
  "mark": {"type": "line"},
  "encoding": {"x": {"field": "prob_pred", "type": "quantitative"}, "y": {"field": "prob_true", "type": "quantitative"},
               "color": {"field": "rev"}, "strokeDash": {"field": "filename"}},
  "data": {"values": [
    {"prob_pred": 0.1, "prob_true": 0.2, "filename": "calibration.json", "rev": "b"},
    {"prob_pred": 0.1, "prob_true": NaN, "filename": "calibration_uncalibrated.json", "rev": "b"}]}}}],
"importance": [{"type": "vega", "content": {
  "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
  "mark": {"type": "bar"}, "encoding": {"x": {"field": "importance", "type": "quantitative"},
                                        "y": {"field": "feature", "type": "nominal"}, "yOffset": {"field": "rev"},
                                        "color": {"field": "rev"}},
  "data": {"values": [{"feature": "age", "importance": 0.7, "rev": "a"},
                      {"feature": "age", "importance": 0.6, "rev": "b"}]}}}],
"residuals": [],
"reports/evaluate/figures/roc.png": [{"type": "image", "revisions": ["a"], "url": "/tmp/a_roc.png"}]
}}"""


def test_parse_dvc_json_reads_bare_infinity_and_nan():
    parsed = parse_dvc_json('{"t": [Infinity, -Infinity, NaN, 0.5]}')
    assert parsed["t"][:2] == [math.inf, -math.inf] and math.isnan(parsed["t"][2]) and parsed["t"][3] == 0.5


def test_json_safe_turns_non_finite_numbers_into_null_and_keeps_the_rest():
    spec = parse_dvc_json('{"data": {"values": [{"t": Infinity, "u": -Infinity, "v": NaN, "w": 0.5, "b": true}]}}')
    assert json_safe(spec) == {"data": {"values": [{"t": None, "u": None, "v": None, "w": 0.5, "b": True}]}}
    json.dumps(json_safe(spec), allow_nan=False)  # strict JSON, as vl-convert needs


def test_collect_plots_keeps_data_plots_with_values_and_makes_their_specs_strict_json():
    plots = {plot.key: plot for plot in collect_plots(parse_dvc_json(SHOWN))}
    assert list(plots) == ["roc", "confusion_matrix", "calibration", "importance"]  # no empty or image plots
    assert [plots[key].title for key in plots] == ["ROC (test)", "Confusion matrix", "Calibration", "importance"]
    assert [row["threshold"] for row in plots["roc"].spec["data"]["values"]] == [None, 0.6, 0.1, None, 0.2]
    assert plots["roc"].spec["params"] == [{"name": "grid", "select": "interval", "bind": "scales"}]
    assert plots["confusion_matrix"].spec["params"] == [
        {"name": "showValues", "bind": {"input": "checkbox"}, "value": True}  # numbers in the picture
    ]
    for plot in plots.values():
        json.dumps(plot.spec, allow_nan=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), path
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_render_writes_one_png_per_data_plot_infinity_and_nan_included(tmp_path):
    plots = collect_plots(parse_dvc_json(SHOWN))
    names = image_names([plot.key for plot in plots])
    for plot in plots:
        render(plot, tmp_path / names[plot.key], scale=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names.values())
    for name in names.values():
        width, height = png_size(tmp_path / name)
        assert 150 <= width <= 2000 and 50 <= height <= 2000, (name, width, height)
    width, height = png_size(tmp_path / "confusion_matrix.png")
    assert width > 1.5 * height  # one matrix per revision, side by side
    render(plots[0], tmp_path / "roc@2.png", scale=2)
    assert png_size(tmp_path / "roc@2.png")[0] >= 1.9 * png_size(tmp_path / "roc.png")[0]  # scale is honored


def test_load_errors_names_each_unreadable_revision_once():
    stderr = [
        "WARNING: failed to load metrics in revision 'a', config file error\nDVC failed to load some metrics",
        "WARNING: failed to load metrics in revision 'a', config file error\n",
    ]
    notes = load_errors(parse_dvc_json(SHOWN), stderr)
    assert len(notes) == 2
    assert notes[0].startswith("Plots of `a` could not be loaded (DataIndexDirError: failed to load directory)")
    assert notes[1] == "failed to load metrics in revision 'a', config file error"


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


def test_find_dvc_root_walks_up(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "a/b").mkdir(parents=True)
    assert find_dvc_root(tmp_path / "a/b") == tmp_path
    assert find_dvc_root(tmp_path.parent) is None
