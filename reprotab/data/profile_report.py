"""The data profile as pages: a Markdown summary for pull requests and skrub's HTML table report.

`summary_markdown` renders what reprotab/data/profile.py computed (flags first, then the target,
then one row per column). `table_report_html` is skrub's interactive TableReport of a seeded
sample of the table; its title says how many rows it shows out of how many.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

from reprotab.data.profile import FLAG_TEXT, sample

REPORT_ROWS = 10_000  # skrub draws a histogram per column: a sample keeps the page quick to build and open


def summary_markdown(profile: dict[str, Any], *, source: str) -> str:
    """The profile in Markdown: flags with what to do, target balance, one table row per column."""
    sampled = profile["sampled"]
    lines = [
        f"# Data profile: `{source}`",
        "",
        f"{profile['rows']:,} rows, {profile['columns']} columns. Column statistics from "
        + _rows_note(sampled["stats_rows"], profile["rows"])
        + f"; the leak check on {sampled['leak_rows']:,} rows "
        f"({profile['leak_check']['metric']} of each column alone, 3-fold, flagged at "
        f"≥ {profile['leak_check']['flag_at']}).",
        "",
        "## Flags",
        "",
    ]
    flagged = [(flag, names) for flag, names in profile["flags"].items() if names]
    lines += [f"- **{flag}**: {', '.join(f'`{n}`' for n in names)} — {FLAG_TEXT[flag]}" for flag, names in flagged]
    duplicates = profile["duplicate_rows"]
    if duplicates["count"]:
        ignoring = f" (ignoring `{duplicates['ignoring']}`)" if duplicates["ignoring"] else ""
        lines.append(
            f"- **duplicate_rows**: {duplicates['count']:,} rows ({duplicates['share']:.1%}) repeat an earlier "
            f"row{ignoring}; prepare keeps them, so one may land in train and its copy in test"
        )
    if not flagged and not duplicates["count"]:
        lines.append("No flags.")
    lines += ["", "## Target", "", *_target_lines(profile["target"]), "", "## Columns", ""]
    lines += [
        "| column | role | kind | missing | distinct | values | leak score | flags |",
        "|---|---|---|---:|---:|---|---:|---|",
    ]
    for name, entry in profile["by_column"].items():
        score = entry.get("leak_score")
        lines.append(
            f"| `{name}` | {entry['role']} | {entry['kind']} | {entry['missing_share']:.1%} | {entry['distinct']:,} "
            f"| {_values(entry)} | {'' if score is None else f'{score:.3f}'} | {', '.join(entry['flags'])} |"
        )
    return "\n".join(lines) + "\n"


def _rows_note(used: int, total: int) -> str:
    return f"all {total:,} rows" if used >= total else f"a seeded sample of {used:,} rows"


def _target_lines(target: dict[str, Any]) -> list[str]:
    if target.get("missing"):
        return [f"Target column `{target['column']}` is not in the table."]
    if "class_counts" not in target:
        return [f"`{target['column']}` ({target['task']}): see its row below."]
    shares = ", ".join(f"`{k}` {v:.1%}" for k, v in target["class_share"].items())
    return [
        f"`{target['column']}`: {shares} (largest/smallest class {target['imbalance_ratio']:.1f}).",
        f"`sampler: auto` would choose **{target['sampler_auto']}** ({target['sampler_auto_reason']}; "
        "counted on the whole table, prepare's stratified train split has the same shares).",
    ]


def _values(entry: dict[str, Any]) -> str:
    if "range" in entry:
        low, high = entry["range"]["min"], entry["range"]["max"]
        median = entry["range"].get("median")
        return f"{low} … {high}" + ("" if median is None else f" (median {median})")
    top = entry.get("top", [])[:3]
    return ", ".join(f"{_cell(t['value'])} {t['share']:.0%}" for t in top)


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 24 else text[:23] + "…"


def table_report_html(frame: pd.DataFrame, *, source: str, seed: int, rows: int = REPORT_ROWS) -> str:
    """skrub's TableReport page of (a seeded sample of) the table."""
    from skrub import TableReport  # imported here: skrub is slow to import and only this page needs it

    shown = sample(frame, rows, seed)
    rows_shown = f"all {len(frame):,} rows" if len(shown) == len(frame) else f"seeded sample of {len(shown):,}"
    title = f"{source}: {rows_shown}" + ("" if len(shown) == len(frame) else f" of {len(frame):,} rows")
    with _seeded_ids(seed):
        page = TableReport(shown, title=title, verbose=0).html()
    return _SVG_DATE.sub("", page)


# matplotlib stamps each SVG figure with the time it was drawn: the page keeps no date at all.
_SVG_DATE = re.compile(r"\s*<dc:date>[^<]*</dc:date>")
_RENDERING = threading.Lock()  # one page at a time may swap skrub's id source


class _SeededSecrets:
    """What skrub asks `secrets` for (`token_hex`), drawn from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self._draw = random.Random(seed)

    def token_hex(self, nbytes: int | None = None) -> str:
        return self._draw.randbytes(32 if nbytes is None else nbytes).hex()


@contextmanager
def _seeded_ids(seed: int) -> Iterator[None]:
    """skrub names the page's HTML elements with `secrets.token_hex`, so each run wrote a different
    page and `dvc repro` never reproduced profile.html byte for byte. The ids only need to be
    unique within the page, so while it renders skrub's two modules that draw them (and only
    those: the process's own `secrets` is never touched) see a seeded stand-in; matplotlib's
    clip-path ids take a fixed salt."""
    import matplotlib
    import skrub._reporting._html as html
    import skrub._utils as utils

    with _RENDERING:
        originals = html.secrets, utils.secrets
        html.secrets = utils.secrets = _SeededSecrets(seed)
        try:
            with matplotlib.rc_context({"svg.hashsalt": f"reprotab-{seed}"}):
                yield
        finally:
            html.secrets, utils.secrets = originals
