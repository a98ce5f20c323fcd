"""review: what changed between two revisions (metrics, params, plots) in one Markdown report.

    reprotab review --base origin/main [--head <rev>] [--out reports/review]

Reads   `dvc metrics diff`, `dvc params diff` and `dvc plots diff --json` between --base and --head
        (git revisions; --head defaults to the workspace). Metrics and params are git-tracked; plot
        data of a revision comes from the workspace, the local DVC cache or else the DVC remote.
Writes  <out>/report.md: the metric and param diff tables, then every data plot dvc.yaml declares
        (ROC, precision-recall, confusion matrix, ...) as <out>/<plot>.png, referenced by relative paths.
        With --artifact-url also <out>/comment.md: the same text for a pull-request comment, which
        links to the images (a comment cannot show files from the runner) instead of embedding them.

Each image is the Vega-Lite spec `dvc plots diff --json` returns (its template with both revisions'
data inlined), rendered to PNG by vl-convert: the picture `dvc plots diff` and DVC's VS Code extension
show, with the revisions told apart by color (curves, bars) or side by side (confusion matrices).
A revision whose plots cannot be loaded (outputs never pushed, no remote credentials) does not fail
the review: the report says which revision and why. Unknown revisions and running outside a DVC
repository are user errors (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotab import paths, vcs
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem
from reprotab.runner import stage_main

log = logging.getLogger(__name__)
WORKSPACE = "workspace"  # DVC's name for the working tree in diffs
SCALE = 2  # pixels per Vega-Lite unit: crisp in a pull-request comment
_JSON_CONSTANTS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def parse_dvc_json(text: str) -> dict[str, Any]:
    """`dvc plots diff --json` writes a non-finite number of a plot file (an ROC threshold of Infinity, as
    scikit-learn gives) as a bare `Infinity`, which strict JSON parsers reject. Python's parser accepts it;
    the mapping is spelled out so the choice is deliberate (json_safe turns them into null for rendering)."""
    return json.loads(text, parse_constant=_JSON_CONSTANTS.__getitem__)


def json_safe(node: Any) -> Any:
    """The spec with every non-finite number (DVC's Infinity ROC threshold, NaN) as null: vl-convert
    takes strict JSON values only, and Vega-Lite leaves a null out of a drawn line as it does a missing value."""
    if isinstance(node, dict):
        return {key: json_safe(value) for key, value in node.items()}
    if isinstance(node, list):
        return [json_safe(value) for value in node]
    return None if isinstance(node, float) and not math.isfinite(node) else node


def static_view(spec: dict[str, Any]) -> dict[str, Any]:
    """An image has no inputs: a checkbox the template binds (the confusion matrix's "show values")
    starts checked, so the numbers are in the picture."""
    params = [
        {**param, "value": True}
        if isinstance(bind := param.get("bind"), dict) and bind.get("input") == "checkbox"
        else param
        for param in spec.get("params") or []
    ]
    return {**spec, "params": params} if params else spec


@dataclass(frozen=True)
class Plot:
    """One data plot of `dvc plots diff --json`: its id, title and Vega-Lite spec with the data inlined."""

    key: str
    title: str
    spec: dict[str, Any]


def collect_plots(shown: Mapping[str, Any]) -> list[Plot]:
    """The data plots that hold values in some revision (image plots and empty plots are skipped)."""
    plots = []
    for key, entries in (shown.get("data") or {}).items():
        entry = next((e for e in entries if e.get("type") == "vega"), None)
        spec = (entry or {}).get("content") or {}
        values = (spec.get("data") or {}).get("values")
        if not isinstance(values, list) or not values:
            continue
        title = spec.get("title")
        title = title.get("text") if isinstance(title, dict) else title
        plots.append(Plot(key, str(title or key), static_view(json_safe(spec))))
    return plots


def load_errors(shown: Mapping[str, Any], stderr: Iterable[str]) -> list[str]:
    """What DVC could not read, once each: the plot errors of the JSON output and DVC's WARNING lines."""
    notes = [
        f"Plots of `{error.get('rev')}` could not be loaded ({error.get('type')}: {error.get('msg')}). "
        "Push that revision's outputs (`dvc push`) or give this clone the remote's credentials."
        for error in shown.get("errors") or []
    ]
    notes += [
        line[len("WARNING:") :].strip() for text in stderr for line in text.splitlines() if line.startswith("WARNING:")
    ]
    return list(dict.fromkeys(notes))


def image_names(keys: Sequence[str]) -> dict[str, str]:
    """`roc.png` for plot `roc` or file reports/evaluate/plots/sklearn/roc.json; longer names where stems collide."""
    stems = [Path(key).stem for key in keys]
    names = {}
    for key, stem in zip(keys, stems, strict=True):
        base = (
            stem if stems.count(stem) == 1 else str(Path(key.removeprefix(f"{paths.EVALUATE_PLOTS}/")).with_suffix(""))
        )
        names[key] = f"{re.sub(r'[^A-Za-z0-9_.]+', '-', base)}.png"
    return names


def diff_rows(table: str) -> int:
    """How many rows a `dvc ... diff --md` table has below its header."""
    return max(0, sum(line.startswith("|") for line in table.splitlines()) - 2)


# First line of comment.md: the workflow finds and edits its own comment by it, never another bot's.
COMMENT_MARKER = "<!-- reprotab experiment review -->"


def report_markdown(
    *,
    base: str,
    head: str,
    metrics: str,
    params: str,
    images: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
    images_url: str | None = None,
) -> str:
    """The report: diff tables, the plots (embedded, or linked at `images_url`), notes."""
    parts = [f"## Experiment review: `{base}` → `{head}`", "### Metrics"]
    parts.append(metrics.strip() if diff_rows(metrics) else f"No metric changed between `{base}` and `{head}`.")
    parts.append("### Params")
    parts.append(params.strip() if diff_rows(params) else f"No param changed between `{base}` and `{head}`.")
    parts.append("### Plots")
    if not images:
        parts.append("No plots to compare: DVC found none in either revision.")
    elif images_url:
        listed = "\n".join(f"- {title} (`{name}`)" for title, name in images)
        parts.append(
            f"One image per plot, `{base}` and `{head}` in each, attached as an artifact to "
            f"[this workflow run]({images_url}) (a pull-request comment cannot show files from the runner):\n\n{listed}"
        )
    else:
        parts.append(
            f"Each plot as `dvc plots diff` draws it: `{base}` in purple, `{head}` in teal "
            "(a confusion matrix per revision)."
        )
        parts += [f"#### {title}\n\n![{title}]({name})" for title, name in images]
    if notes:
        parts += ["### Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(parts) + "\n"


def render(plot: Plot, path: Path, *, scale: float = SCALE) -> None:
    """The plot as DVC draws it (its own Vega-Lite spec, rendered without a browser), as a PNG."""
    import vl_convert

    png = vl_convert.vegalite_to_png(plot.spec, scale=scale)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png)


def find_dvc_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a `.dvc` directory."""
    return next((folder for folder in (start, *start.parents) if (folder / ".dvc").is_dir()), None)


def _dvc(args: Sequence[str], root: Path) -> subprocess.CompletedProcess:
    result = vcs.run_dvc(*args, cwd=root)
    if result.returncode != 0:
        raise UserError(problem(f"dvc {' '.join(args[:2])}", "failed", result.stderr.strip()[-300:] or None))
    return result


def check_repository(cwd: Path, revisions: Mapping[str, str | None]) -> Path:
    """The DVC root; a UserError unless it is a git repository that knows every revision given."""
    root = find_dvc_root(cwd)
    if root is None:
        raise UserError(problem("review", "must run inside a DVC repository", str(cwd), "Run it from the project root"))
    if vcs.git_dir(root) is None:
        raise UserError(problem("review", "needs a git repository to compare revisions", str(root)))
    for option, rev in revisions.items():
        if rev is not None and vcs.commit_of(rev, cwd=root) is None:
            raise UserError(
                problem(
                    option,
                    "is not a git revision of this repository",
                    rev,
                    "Pass a commit, branch or tag; fetch a remote branch first (git fetch origin main)",
                )
            )
    return root


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprotab review", description="Metrics, params and plots of two revisions in one report."
    )
    parser.add_argument("--base", required=True, help="git revision to compare against (e.g. origin/main)")
    parser.add_argument("--head", default=None, help="git revision to review (default: the workspace)")
    parser.add_argument("--out", default="reports/review", help="folder for report.md and the images")
    parser.add_argument("--artifact-url", default=None, help="where the images are published; writes comment.md")
    return parser


@stage_main("review", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    root = check_repository(Path.cwd(), {"--base": args.base, "--head": args.head})
    revisions = [args.base, *([args.head] if args.head else [])]
    labels = [args.base, args.head or WORKSPACE]
    metrics = _dvc(["metrics", "diff", *revisions, "--md"], root)
    params = _dvc(["params", "diff", *revisions, "--md"], root)
    with tempfile.TemporaryDirectory() as images_dir:  # where DVC copies image plots, which are not used
        plotted = _dvc(["plots", "diff", *revisions, "--json", "--out", images_dir], root)
    shown = parse_dvc_json(plotted.stdout)
    plots = collect_plots(shown)
    out = Path(args.out)
    names = image_names([plot.key for plot in plots])
    for plot in plots:
        render(plot, out / names[plot.key])
    notes = load_errors(shown, [r.stderr for r in (metrics, params, plotted)])
    for note in notes:
        log.warning("%s", note)
    texts = {"metrics": metrics.stdout, "params": params.stdout, "notes": notes}
    images = [(plot.title, names[plot.key]) for plot in plots]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(report_markdown(base=labels[0], head=labels[1], images=images, **texts), encoding="utf-8")
    if args.artifact_url:
        body = (
            COMMENT_MARKER
            + "\n"
            + report_markdown(base=labels[0], head=labels[1], images=images, images_url=args.artifact_url, **texts)
        )
        with atomic_path(out / "comment.md") as tmp:
            tmp.write_text(body, encoding="utf-8")
    log.info(
        "%s → %s: %d metric and %d param rows changed, %d plots; wrote %s",
        *labels,
        diff_rows(metrics.stdout),
        diff_rows(params.stdout),
        len(plots),
        out / "report.md",
    )


if __name__ == "__main__":
    main()
