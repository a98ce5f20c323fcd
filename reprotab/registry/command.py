"""`reprotab registry`: register, promote, roll back and inspect model versions (reprotab/registry/versions.py).

reprotab registry register [--version vX.Y.Z | --bump major|minor|patch]
reprotab registry promote VERSION --stage staging|prod [--force --reason "..."]
reprotab registry rollback [--stage prod] [--reason "..."]
reprotab registry show [--json]
reprotab registry history [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reprotab.registry import versions as registry
from reprotab.registry.checks import check_repo
from reprotab.retrain.journal import refuse_if_interrupted
from reprotab.runner import stage_main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprotab registry",
        description="Model versions and stages as git tags (GTO); models stay in DVC. No server.",
    )
    parser.add_argument("-C", "--repo", default=".", help="the project's git repository (default: here)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    register = commands.add_parser(
        "register", help="tag HEAD's model as a new version", description="Tag HEAD's model as a new version."
    )
    which = register.add_mutually_exclusive_group()
    which.add_argument("--version", help="the version, e.g. v1.2.0 (default: next patch; the first is v1.0.0)")
    which.add_argument("--bump", choices=("major", "minor", "patch"), default="patch", help="part to bump")
    promote = commands.add_parser(
        "promote",
        help="assign a version to a stage",
        description="Assign a version to a stage. prod needs a positive gate decision at the version's commit.",
    )
    promote.add_argument("version", help="a registered version, e.g. v1.0.1")
    promote.add_argument("--stage", required=True, help="staging or prod (see .gto)")
    promote.add_argument("--force", action="store_true", help="promote to prod despite the gate (needs --reason)")
    promote.add_argument("--reason", help="why; kept in the registry history")
    rollback = commands.add_parser(
        "rollback",
        help="put the previous version back in a stage",
        description="Assign again the version that held the stage before the current one.",
    )
    rollback.add_argument("--stage", default="prod", help="stage to roll back (default: prod)")
    rollback.add_argument("--reason", help="why; kept in the registry history")
    for name, text in (("show", "what each stage holds now and held before"), ("history", "every registry event")):
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table; None shows as a dash."""
    cells = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _short(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "commit": (row.get("commit") or "")[:8] or None}


def render_show(state: dict[str, Any]) -> str:
    stages = [_short({"stage": stage, **info}) for stage, info in state["stages"].items()]
    parts = [table(stages, ["stage", "version", "commit", "rollback_to"])]
    if state["archived"]:
        parts += ["", "archived (newest first):", table(state["archived"], ["stage", "version", "replaced_by", "at"])]
    return "\n".join(parts)


def render_history(rows: list[dict[str, Any]]) -> str:
    columns = ["time", "action", "version", "stage", "commit", "replaces", "gate", "forced", "reason", "gate_reason"]
    return table([_short(r) for r in rows], columns) if rows else "no registry events yet"


@stage_main("registry", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    args.repo = check_repo(Path(args.repo))
    if args.command in ("register", "promote", "rollback"):
        refuse_if_interrupted(args.repo, f"registry {args.command}")
    if args.command == "register":
        result = registry.register(args.repo, version=args.version, bump=args.bump)
        print(f"registered {result['version']} (commit {result['commit'][:8]}, tag {result['tag']})")
    elif args.command == "promote":
        result = registry.promote(
            args.repo, version=args.version, stage=args.stage, force=args.force, reason=args.reason
        )
        print(f"{result['stage']}: {result['version']} (was {result['replaces'] or 'empty'}; tag {result['tag']})")
    elif args.command == "rollback":
        result = registry.rollback(args.repo, stage=args.stage, reason=args.reason)
        print(f"{result['stage']}: rolled back to {result['version']} (was {result['replaces']}; tag {result['tag']})")
    elif args.command == "show":
        state = registry.show(args.repo)
        print(json.dumps(state, indent=2, default=str) if args.json else render_show(state))
    else:
        rows = registry.history(args.repo)
        print(json.dumps(rows, indent=2, default=str) if args.json else render_history(rows))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
