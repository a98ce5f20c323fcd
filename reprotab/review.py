"""review: what changed between two revisions (metrics, params, plots) in one Markdown report.

    reprotab review --base origin/main [--head <rev>] [--out reports/review]

Reads   `dvc metrics diff`, `dvc params diff` and `dvc plots diff --json` between --base and --head
        (git revisions; --head defaults to the workspace). Metrics and params are git-tracked; plot
        data of a revision comes from the workspace, the local DVC cache or else the DVC remote.
Writes  <out>/report.md: the metric and param diff tables, then every data plot dvc.yaml declares
        (ROC, precision-recall, confusion matrix, ...) as <out>/<plot>.png with one panel per
        revision side by side, referenced by relative paths.
        With --artifact-url also <out>/comment.md: the same text for a pull-request comment, which
        links to the images (a comment cannot show files from the runner) instead of embedding them.

Each plot is drawn from its data with matplotlib, in the kind its DVC template draws (vega mark
`line`, `rect`, `bar` or `point`), so the two revisions are drawn the same way whatever stage code
each one ran. A revision whose plots cannot be loaded (outputs never pushed, no remote credentials)
does not fail the review: the report says which revision and why. Unknown revisions and running
outside a DVC repository are user errors (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotab.data import atomic_path
from reprotab.errors import UserError, problem
from reprotab.runner import stage_main

log = logging.getLogger(__name__)
WORKSPACE = "workspace"  # DVC's name for the working tree in diffs
KNOWN_AXES = (("fpr", "tpr"), ("recall", "precision"), ("actual", "predicted"), ("prob_pred", "prob_true"))
COLORS = ("#945dd6", "#13adc7")  # base, head: DVC's own colors in `dvc plots diff`
SCATTER_MARKS = {"point", "circle", "square", "tick"}
_JSON_CONSTANTS = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


@dataclass(frozen=True)
class Plot:
    """One plot's data split by revision label, and how to draw it."""

    key: str
    title: str
    x: str
    y: str
    kind: str  # "curve", "scatter", "bar" or "confusion"
    rows: dict[str, list[dict[str, Any]]]
    labels: tuple[str, str] = ("", "")  # axis titles; the field names when empty
    normalize_by: str | None = None  # confusion: shares within each value of this field


def parse_dvc_json(text: str) -> dict[str, Any]:
    """DVC writes the first ROC threshold as a bare `Infinity`, which strict JSON parsers reject.
    Python's parser accepts it; the mapping is spelled out so the choice is deliberate."""
    return json.loads(text, parse_constant=_JSON_CONSTANTS.__getitem__)


def clip_infinite(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace ±inf in each field by that field's largest/smallest finite value (None if it has none)."""
    finite: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.items():
            if _is_number(value) and math.isfinite(value):
                finite.setdefault(name, []).append(value)

    def clip(name: str, value: Any) -> Any:
        if not (_is_number(value) and math.isinf(value)):
            return value
        seen = finite.get(name)
        return (max(seen) if value > 0 else min(seen)) if seen else None

    return [{name: clip(name, value) for name, value in row.items()} for row in rows]


def choose_axes(content: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """x and y fields: the plot's own encoding, else a known pair, else `step` against the one other field."""
    fields = [name for name in dict.fromkeys(k for row in rows for k in row) if name not in ("rev", "filename")]
    encoding = _encoding(content)
    x, y = ((encoding.get(axis) or {}).get("field") for axis in ("x", "y"))
    if x in fields and y in fields and x != "step":
        return x, y
    for pair in KNOWN_AXES:
        if set(pair) <= set(fields):
            return pair
    others = [name for name in fields if name != "step"]
    if "step" in fields and len(others) == 1:
        return "step", others[0]
    return None


def plot_kind(content: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, x: str, y: str) -> str:
    """How the DVC template draws the plot, from its vega marks (text labels alone mean a confusion matrix)."""
    marks = set(_marks(content))
    if "rect" in marks or (not marks and all(isinstance(r.get(x), str) and isinstance(r.get(y), str) for r in rows)):
        return "confusion"
    if "bar" in marks:
        return "bar"
    return "scatter" if marks and marks <= SCATTER_MARKS else "curve"


def normalized_by(content: Mapping[str, Any]) -> str | None:
    """The field a confusion template sums counts over to show shares (DVC's confusion_normalized)."""
    for step in (content.get("spec") or content).get("transform") or []:
        sums = [agg for agg in step.get("joinaggregate") or [] if agg.get("op") == "sum"]
        if sums and step.get("groupby"):
            return step["groupby"][0]
    return None


def collect_plots(shown: Mapping[str, Any], *, revisions: Sequence[str]) -> list[Plot]:
    """The data plots of `dvc plots diff --json` (image plots are skipped), rows split by revision."""
    plots = []
    for key, entries in (shown.get("data") or {}).items():
        entry = next((e for e in entries if e.get("type") == "vega"), None)
        content = (entry or {}).get("content") or {}
        values = (content.get("data") or {}).get("values")
        if not isinstance(values, list) or not values:
            continue
        axes = choose_axes(content, values)
        if axes is None:
            log.warning("plot %s skipped: no x/y fields to draw", key)
            continue
        by_rev = {rev: clip_infinite([r for r in values if r.get("rev") == rev]) for rev in revisions}
        by_rev = {rev: rows for rev, rows in by_rev.items() if rows}
        if not by_rev:
            continue
        x, y = axes
        title = content.get("title")
        title = title.get("text") if isinstance(title, dict) else title
        encoding = _encoding(content)
        x_label, y_label = (str((encoding.get(axis) or {}).get("title") or "") for axis in ("x", "y"))
        kind = plot_kind(content, values, x=x, y=y)
        norm = normalized_by(content) if kind == "confusion" else None
        plots.append(Plot(key, str(title or key), x, y, kind, by_rev, (x_label, y_label), norm))
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


def curve_points(rows: Sequence[Mapping[str, Any]], *, x: str, y: str) -> tuple[list[float], list[float]]:
    """The (x, y) pairs that are finite numbers, in data order."""
    pairs = [(r.get(x), r.get(y)) for r in rows]
    kept = [(a, b) for a, b in pairs if _is_number(a) and _is_number(b) and math.isfinite(a) and math.isfinite(b)]
    return [a for a, _ in kept], [b for _, b in kept]


def confusion_counts(
    rows: Sequence[Mapping[str, Any]], *, x: str, y: str, labels: Sequence[str] | None = None
) -> tuple[list[str], list[list[int]]]:
    """Labels and counts[i][j]: rows whose y is labels[i] and whose x is labels[j]."""
    labels = list(labels) if labels is not None else sorted({str(r[x]) for r in rows} | {str(r[y]) for r in rows})
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for row in rows:
        counts[index[str(row[y])]][index[str(row[x])]] += 1
    return labels, counts


def shares(counts: Sequence[Sequence[int]], *, along: str) -> list[list[float]]:
    """Counts as shares of each row ("y": every y value sums to 1) or of each column ("x")."""
    if along == "y":
        return [[c / (sum(row) or 1) for c in row] for row in counts]
    totals = [sum(column) or 1 for column in zip(*counts, strict=True)]
    return [[c / total for c, total in zip(row, totals, strict=True)] for row in counts]


def image_names(keys: Sequence[str]) -> dict[str, str]:
    """`roc.png` for plot `roc` or file reports/evaluate/plots/sklearn/roc.json; longer names where stems collide."""
    stems = [Path(key).stem for key in keys]
    names = {}
    for key, stem in zip(keys, stems, strict=True):
        base = (
            stem if stems.count(stem) == 1 else str(Path(key.removeprefix("reports/evaluate/plots/")).with_suffix(""))
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
            f"One image per plot, `{base}` and `{head}` side by side, attached as an artifact to "
            f"[this workflow run]({images_url}) (a pull-request comment cannot show files from the runner):\n\n{listed}"
        )
    else:
        parts.append(f"One panel per revision (`{base}` in purple, `{head}` in teal); curves repeat the other in grey.")
        parts += [f"#### {title}\n\n![{title}]({name})" for title, name in images]
    if notes:
        parts += ["### Notes", "\n".join(f"- {note}" for note in notes)]
    return "\n\n".join(parts) + "\n"


def render(plot: Plot, *, revisions: Sequence[str], path: Path) -> None:
    """One PNG per plot: a panel per revision, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [rev for rev in revisions if rev in plot.rows]
    numeric = plot.kind in ("curve", "scatter")  # bars share their value axis only
    bars = max((len(rows) for rows in plot.rows.values()), default=0) if plot.kind == "bar" else 0
    size = (4.6 * len(shown), max(4.2, 0.22 * bars + 1.5))
    fig, axes = plt.subplots(1, len(shown), figsize=size, squeeze=False, sharex=numeric or bars > 0, sharey=numeric)
    for ax, rev in zip(axes[0], shown, strict=True):
        color = COLORS[revisions.index(rev) % len(COLORS)]
        _draw(ax, plot, rev=rev, others=[o for o in shown if o != rev], color=color)
        ax.set_title(_short(rev), color=color)
        ax.set_xlabel(plot.labels[0] or plot.x)
        ax.set_ylabel(plot.labels[1] or plot.y)
    fig.suptitle(plot.title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _draw(ax: Any, plot: Plot, *, rev: str, others: Sequence[str], color: str) -> None:
    rows = plot.rows[rev]
    if plot.kind == "confusion":
        every = [row for revision_rows in plot.rows.values() for row in revision_rows]
        labels, counts = confusion_counts(every, x=plot.x, y=plot.y)  # the same cells in every panel
        labels, counts = confusion_counts(rows, x=plot.x, y=plot.y, labels=labels)
        along = {plot.x: "x", plot.y: "y"}.get(plot.normalize_by or "")
        cells = shares(counts, along=along) if along else counts
        ax.imshow(cells, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        top = max(max(row) for row in cells) or 1
        for i, row in enumerate(cells):
            for j, cell in enumerate(row):
                text = f"{cell:.2f}" if along else str(cell)
                ax.text(j, i, text, ha="center", va="center", color="white" if cell > top / 2 else "black")
    elif plot.kind == "bar":
        kept = [r for r in rows if _is_number(r.get(plot.x)) and math.isfinite(r[plot.x])]
        ax.barh([str(r[plot.y]) for r in kept][::-1], [r[plot.x] for r in kept][::-1], color=color)
    elif plot.kind == "scatter":
        ax.scatter(*curve_points(rows, x=plot.x, y=plot.y), s=6, alpha=0.5, color=color)
    else:
        _curves(ax, plot, rev=rev, others=others, color=color)


def _curves(ax: Any, plot: Plot, *, rev: str, others: Sequence[str], color: str) -> None:
    """This revision's curves over the others' in grey; a multi-file plot gets a line style per file."""
    styles = ("-", "--", ":", "-.")
    for other in [*others, rev]:
        mine = other == rev
        files = list(dict.fromkeys(r.get("filename") for r in plot.rows[other]))
        for i, file in enumerate(files):
            rows = [r for r in plot.rows[other] if r.get("filename") == file]
            label = _short(other) + (f" {Path(file).stem}" if file else "")
            style = {"color": color, "lw": 1.8} if mine else {"color": "0.7", "lw": 1}
            ax.plot(*curve_points(rows, x=plot.x, y=plot.y), ls=styles[i % len(styles)], label=label, **style)
    ax.legend(loc="best", fontsize=8)


def _encoding(content: Mapping[str, Any]) -> Mapping[str, Any]:
    return content.get("encoding") or (content.get("spec") or {}).get("encoding") or {}


def _marks(node: Any) -> list[str]:
    """Every vega mark type in a spec, layers and facet specs included."""
    if isinstance(node, list):
        return [mark for item in node for mark in _marks(item)]
    if not isinstance(node, dict):
        return []
    mark = node.get("mark")
    own = [mark.get("type") if isinstance(mark, dict) else mark] if mark else []
    return own + _marks(node.get("layer")) + _marks(node.get("spec"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(rev: str) -> str:
    return rev[:7] if re.fullmatch(r"[0-9a-f]{40}", rev) else rev


def find_dvc_root(start: Path) -> Path | None:
    """The nearest folder at or above `start` that holds a `.dvc` directory."""
    return next((folder for folder in (start, *start.parents) if (folder / ".dvc").is_dir()), None)


def _run(args: Sequence[str], root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=root, capture_output=True, text=True)


def _dvc(args: Sequence[str], root: Path) -> subprocess.CompletedProcess:
    beside = Path(sys.executable).parent / "dvc"  # the environment's own dvc, as the stages use
    result = _run([str(beside) if beside.exists() else shutil.which("dvc") or "dvc", *args], root)
    if result.returncode != 0:
        raise UserError(problem(f"dvc {' '.join(args[:2])}", "failed", result.stderr.strip()[-300:] or None))
    return result


def check_repository(cwd: Path, revisions: Mapping[str, str | None]) -> Path:
    """The DVC root; a UserError unless it is a git repository that knows every revision given."""
    root = find_dvc_root(cwd)
    if root is None:
        raise UserError(problem("review", "must run inside a DVC repository", str(cwd), "Run it from the project root"))
    if _run(["git", "rev-parse", "--git-dir"], root).returncode != 0:
        raise UserError(problem("review", "needs a git repository to compare revisions", str(root)))
    for option, rev in revisions.items():
        if rev is not None and _run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], root).returncode:
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
    plots = collect_plots(shown, revisions=labels)
    out = Path(args.out)
    names = image_names([plot.key for plot in plots])
    for plot in plots:
        render(plot, revisions=labels, path=out / names[plot.key])
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
