"""`reprotab batches`: the labelled batches as a managed, auditable set.

    reprotab batches list [--json]
    reprotab batches retire NAME --reason "labels from a broken join"
    reprotab batches restore NAME --reason "labels fixed upstream"

Active batches are the DVC-tracked files in `data.batches.dir` (prepare trains on them as
`data.batches.combine` says). Retiring one moves it, with its .dvc file, to `data/retired/`
(`dvc move`), so no later run trains on it, and appends who/why/when to `data/retired/log.json`;
the commit says why too. Nothing is deleted: the file stays versioned, `restore` moves it back,
and git history holds every step. A batch must carry its target with labels to be added at all
(`check_labels`, used by `reprotab retrain` before it writes anything).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths, vcs
from reprotab.data.tables import read_json, read_table, write_json
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.params.loader import Params, load_params
from reprotab.retrain.journal import refuse_if_interrupted
from reprotab.retrain.steps import StepFailed, check_clean, commit
from reprotab.runner import stage_main

RETIRED = Path(paths.RETIRED)
RETIRED_LOG = Path(paths.RETIRED_LOG)
TABLES = (".parquet", ".pq", ".csv")
log = logging.getLogger(__name__)


def check_labels(rows: pd.DataFrame, *, target: str, features: list[str] | None = None, where: str) -> int:
    """The number of labelled rows; a batch without the target column, or with no label at all,
    is a UserError: it cannot teach the model anything and must not be versioned as if it could."""
    if target not in rows.columns:
        others = [str(c) for c in rows.columns if str(c) not in (features or [])]
        raise UserError(
            problem(
                where,
                f"lacks the target column '{target}', so it holds no labels to learn from",
                sorted(map(str, rows.columns)),
                "Export the batch with its labels (or fix the column name)",
            )
            + did_you_mean(target, others)
        )
    labelled = int(rows[target].notna().sum())
    if labelled == 0:
        raise UserError(
            problem(
                where,
                f"has no label: every value of the target '{target}' is missing",
                f"{len(rows)} rows",
                "Label the rows first (`reprotab query`, `reprotab labels import`), or monitor it without "
                "retraining (`reprotab monitor --batch`)",
            )
        )
    return labelled


def describe(path: Path, *, target: str, task: str) -> dict[str, Any]:
    """Rows, labelled rows and the target's summary of one batch file."""
    frame = read_table(path, where=str(path))
    labels = frame[target].dropna() if target in frame.columns else pd.Series(dtype=float)
    entry: dict[str, Any] = {"rows": len(frame), "labelled": len(labels)}
    if task == "classification" and len(labels):
        shares = labels.astype(str).value_counts(normalize=True).sort_index()
        entry["target"] = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    elif len(labels):
        entry["target"] = f"mean {pd.to_numeric(labels, errors='coerce').mean():.4g}"
    return entry


def _tables(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TABLES) if folder.is_dir() else []


def retired_log(repo: Path) -> list[dict[str, Any]]:
    path = repo / RETIRED_LOG
    return list(read_json(path)) if path.is_file() else []


def listing(repo: Path, params: Params) -> list[dict[str, Any]]:
    """Every batch, active (file name order = arrival order) then retired, with why."""
    why = {e["name"]: e for e in retired_log(repo) if e.get("action") == "retire"}
    rows = []
    for status, folder in (("active", repo / params.data.batches.dir), ("retired", repo / RETIRED)):
        for path in _tables(folder):
            entry = {"name": path.stem, "status": status, "file": str(path.relative_to(repo))}
            entry |= describe(path, target=params.data.target, task=params.task)
            if status == "retired" and path.stem in why:
                entry |= {"reason": why[path.stem]["reason"], "retired": why[path.stem]["time"]}
            rows.append(entry)
    return rows


def _find(folder: Path, name: str, *, where: str) -> Path:
    found = [p for p in _tables(folder) if p.stem == name]
    if not found:
        names = [p.stem for p in _tables(folder)]
        raise UserError(
            problem(where, f"no batch of that name in {folder}", name, f"Batches there: {names}")
            + did_you_mean(name, names)
        )
    return found[0]


def move(repo: Path, name: str, *, reason: str, retire: bool, batches_dir: str) -> dict[str, Any]:
    """Retire (or restore) batch `name`: `dvc move`, a log entry, one commit saying why."""
    if not reason.strip():
        raise UserError(problem("--reason", "must say why (the log and the commit keep it)", reason, '--reason "..."'))
    source_dir, dest_dir = (repo / batches_dir, repo / RETIRED) if retire else (repo / RETIRED, repo / batches_dir)
    source = _find(source_dir, name, where="batches " + ("retire" if retire else "restore"))
    dest = dest_dir / source.name
    if dest.exists():
        raise UserError(problem("batches", "a file of that name is already there", str(dest.relative_to(repo))))
    if not source.with_name(source.name + ".dvc").is_file():
        raise UserError(
            problem(
                "batches", "moves DVC-tracked batches only", str(source.relative_to(repo)), f"`dvc add {source}` first"
            )
        )
    dest_dir.mkdir(parents=True, exist_ok=True)
    moved = vcs.run_dvc("move", str(source.relative_to(repo)), str(dest.relative_to(repo)), cwd=repo)
    if moved.returncode != 0:
        raise UserError(problem("batches", "`dvc move` failed", moved.stderr.strip()[-300:]))
    entry = {
        "name": name,
        "action": "retire" if retire else "restore",
        "reason": reason,
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_json([*retired_log(repo), entry], repo / RETIRED_LOG)
    verb = "Retire" if retire else "Restore"
    try:
        done = commit(repo, f"{verb} batch {name}\n\n{reason}", [batches_dir, str(RETIRED)])
    except StepFailed as exc:
        raise UserError(
            problem("batches", "the move is done but its commit failed", str(exc), "Commit it by hand")
        ) from None
    log.info("%s batch %s: %s", verb.lower(), name, reason)
    return {**entry, "file": str(dest.relative_to(repo)), "commit": done and done["commit"]}


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ["name", "status", "rows", "labelled", "target", "reason"]
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


@stage_main("batches", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab batches", description="List, retire and restore labelled batches.")
    commands = parser.add_subparsers(dest="command", required=True)
    listed = commands.add_parser("list", help="every batch: active or retired, rows, labels, why")
    listed.add_argument("--json", action="store_true")
    for verb, text in (("retire", "stop training on a batch (kept versioned)"), ("restore", "train on it again")):
        sub = commands.add_parser(verb, help=text)
        sub.add_argument("name", help="the batch's name (its file stem, e.g. 2026-11)")
        sub.add_argument("--reason", required=True, help="why; the log and the commit keep it")
    args = parser.parse_args(argv)
    repo, params = Path.cwd(), load_params()
    if args.command == "list":
        rows = listing(repo, params)
        print(json.dumps(rows, indent=1) if args.json else _table(rows) if rows else "no batches")
        return
    refuse_if_interrupted(repo, f"batches {args.command}")
    check_clean(repo)
    done = move(
        repo, args.name, reason=args.reason, retire=args.command == "retire", batches_dir=params.data.batches.dir
    )
    print(f"{done['action']}d {done['name']} → {done['file']}: {done['reason']}")


if __name__ == "__main__":
    main()
