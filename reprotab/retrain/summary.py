"""The pure pieces of `reprotab retrain` (reprotab/retrain/month.py): how a batch file is named and
whether it is new, a one-key edit of params.yaml that keeps its comments, and the summary page.

No git, DVC or subprocesses here; the unit tests call these directly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab.data.tables import file_hash
from reprotab.errors import UserError, problem

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w-]*):(?P<rest>.*)$")


def batch_name(source: str | Path) -> str:
    """The batch's name in data/batches: the file's stem (`2026-11.parquet` → `2026-11`)."""
    name = Path(source).stem
    if not NAME.match(name):
        raise UserError(
            problem(
                "--batch",
                "file name must be letters, digits, '.', '_' or '-' (it names the batch and its report)",
                Path(source).name,
                "Rename it, e.g. 2026-11.parquet (file name order is arrival order)",
            )
        )
    return name


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal columns, dtypes and values, whatever the file format."""
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    return list(a.columns) == list(b.columns) and a.equals(b)


def batch_action(source: Path, dest: Path, *, source_rows: pd.DataFrame, dest_rows: pd.DataFrame | None) -> str:
    """`add` when `dest` does not exist, `already added` when it holds the same rows (same bytes or
    the same table in another format); another table under the same name is a UserError."""
    if dest_rows is None:
        return "add"
    if source.resolve() == dest.resolve() or file_hash(source) == file_hash(dest) or same_rows(source_rows, dest_rows):
        return "already added"
    raise UserError(
        problem(
            "--batch",
            f"a different batch is already versioned as {dest} (same name, other rows)",
            str(source),
            "Name the new file after its own period (e.g. 2026-12.parquet); batches are never overwritten",
        )
    )


def set_value(text: str, dotted: str, value: str) -> str:
    """params.yaml text with the scalar at `dotted` (e.g. data.batches.combine) set to `value`
    (a YAML literal), its comment and every other line untouched."""
    keys, lines = dotted.split("."), text.splitlines(keepends=True)
    stack: list[tuple[int, str]] = []  # (indent, key) of each section enclosing the line
    for number, line in enumerate(lines):
        match = _KEY.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if [k for _, k in stack] != keys:
            continue
        rest = match["rest"]
        comment = rest.find(" #")
        old = rest if comment < 0 else rest[:comment]
        if not old.strip():
            raise UserError(problem(f"params.yaml {dotted}", "is a section, not a single value", None))
        new = f"{match['indent']}{match['key']}: {value}"
        if comment >= 0:
            column = len(match["indent"]) + len(match["key"]) + 1 + comment
            new = new.ljust(column) + rest[comment:].rstrip("\n")
        lines[number] = new + ("\n" if line.endswith("\n") else "")
        return "".join(lines)
    raise UserError(problem("params.yaml", f"has no key {dotted}", None, "Add it (see the shipped params.yaml)"))


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def markdown(summary: dict[str, Any]) -> str:
    """One page: the outcome and why, the monitor's verdict, the data that trained the new model,
    the gate's rules and what the registry did."""
    mon = summary["monitor"]
    lines = [
        f"# Retrain: {summary['batch']}",
        "",
        f"**{summary['outcome']}**: {summary['why']}",
        "",
        f"Batch file `{summary['source']}`, mode `{summary['mode']}`"
        + (", forced (--force)" if summary.get("forced") else "")
        + f", started {summary['started']}.",
        "",
        "## Monitor",
        "",
        f"retrain: **{str(mon['retrain']).lower()}** (full report: `{mon['report']}`)",
        "",
        *([f"- {reason}" for reason in mon["reasons"]] or ["- no drift and no performance drop"]),
    ]
    if mon.get("model"):
        judged = mon["model"]
        lines += ["", f"Model judged: {_cell(judged.get('version'))} ({_cell(judged.get('source'))})."]
    if mon.get("blockers"):
        lines += ["", "Stop reasons (blockers):", "", *[f"- {b}" for b in mon["blockers"]]]
        if summary.get("override"):
            lines += ["", f"Overridden (--override): {summary['override']}"]
    if summary.get("labelled_rows") is not None:
        lines += ["", f"Labelled rows in the batch: {summary['labelled_rows']}."]
    if summary.get("batch_added"):
        lines += ["", "## Data", "", f"Batch: {summary['batch_added']} as `{summary['batch_path']}` (DVC-tracked)."]
        for change in summary.get("params_changes") or []:
            lines.append(f"params.yaml: {change}.")
    trained = summary.get("trained_on")
    if trained:
        ref = trained.get("reference") or {}
        lines += [
            "",
            f"The new model trained on {trained.get('rows', '-')} rows (combine `{trained.get('combine')}`):",
            "",
            "| file | rows | sha256 |",
            "| --- | ---: | --- |",
            f"| {ref.get('path')} (reference) | {ref.get('rows')} | {str(ref.get('sha256', ''))[:12]} |",
            *[f"| {b['name']} | {b['rows']} | {str(b['sha256'])[:12]} |" for b in trained.get("batches", [])],
        ]
    if summary.get("rows_used"):
        used = summary["rows_used"]
        lines += ["", "Rows used: " + ", ".join(f"{split} {rows}" for split, rows in used.items()) + "."]
    if summary.get("init_model"):
        init = summary["init_model"]
        lines += ["", f"Continued from the prod champion {init['version']} (commit {str(init['commit'])[:8]})."]
    gate = summary.get("gate")
    if gate:
        lines += [
            "",
            "## Gate",
            "",
            f"**{'promote' if gate['promote'] else 'keep the champion'}**: {gate['reason']}. "
            f"Champion: {_cell((gate.get('champion') or {}).get('version'))}.",
        ]
        if gate.get("rules"):
            keys = ("rule", "metric", "challenger", "champion", "value", "required", "verdict")
            lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            lines += ["| " + " | ".join(_cell(rule.get(k)) for k in keys) + " |" for rule in gate["rules"]]
    reg = summary.get("registry")
    if reg:
        lines += ["", "## Registry", "", f"{reg['action']}" + (f": {reg['detail']}" if reg.get("detail") else "")]
    if summary.get("commits"):
        lines += ["", "## Commits", "", *[f"- `{c['commit'][:8]}` {c['message']}" for c in summary["commits"]]]
    if summary.get("dvc_push"):
        lines += ["", f"dvc push: {summary['dvc_push']}"]
    if summary.get("rollback") is not None:
        lines += ["", "## Rollback", "", *([f"- {d}" for d in summary["rollback"]] or ["- nothing had changed"])]
    if summary.get("error"):
        lines += ["", "## Error", "", "```", summary["error"], "```"]
    return "\n".join(lines) + "\n"


def first_reason(exc: BaseException) -> str:
    """An error's first line for a one-line message; a heading over a list of problems
    (`params.yaml has problems:` then `  - ...`) keeps its first problem."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    head = lines[0]
    if head.endswith(":") and len(lines) > 1 and lines[1].lstrip().startswith("- "):
        head = f"{head} {lines[1].strip()[2:]}"
    return head.rstrip(".") or type(exc).__name__
