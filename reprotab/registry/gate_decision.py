"""The gate's decision, reports/gate/decision.json (and decision.md beside it): one writer, one reader.

The gate stage writes it (`write_decision`, through `GateDecision.write`); `reprotab registry`
reads it at a version's commit (`GateDecision.at_commit`) before promoting to prod and for the
history, `reprotab retrain` reads the workspace's after `dvc repro` (`GateDecision.from_json`),
and the service shows it under /metadata. Each reader gets the same checked record: what the
code decides on is typed (promote, reason, the champion judged against, the rules, the model
judged), and `document` keeps every field as the gate wrote it, in its order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotab import paths, vcs
from reprotab.data.tables import atomic_path, write_json
from reprotab.errors import UserError, problem

VERDICTS = ("pass", "fail")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """A checked gate decision (see the module docstring)."""

    promote: bool
    reason: str
    champion: Mapping[str, Any]  # the pin the challenger was judged against, with its model's md5
    rules: tuple[Mapping[str, Any], ...]  # each with its rule, metric, both values and verdict
    challenger_md5: str | None  # the model file judged (None in decisions written before it was kept)
    reference: Mapping[str, Any] | None  # the frozen reference set, when one was pinned
    document: Mapping[str, Any]  # everything the gate wrote

    @classmethod
    def from_dict(cls, found: Any, *, where: str) -> GateDecision:
        """A decision from its JSON, or a UserError naming `where` and what is wrong."""

        def wrong(what: str, got: Any) -> UserError:
            return UserError(
                problem(where, f"is not a gate decision: {what}", got, "Run the gate again (`dvc repro gate`)")
            )

        if not isinstance(found, dict):
            raise wrong("it must be a JSON object", type(found).__name__)
        if not isinstance(found.get("promote"), bool):
            raise wrong("promote must be true or false", found.get("promote"))
        if not isinstance(found.get("reason"), str):
            raise wrong("reason must be text", found.get("reason"))
        if not isinstance(found.get("champion"), dict):
            raise wrong("champion must be an object", found.get("champion"))
        rules = found.get("rules")
        if not isinstance(rules, list) or not all(
            isinstance(r, dict) and isinstance(r.get("rule"), str) and r.get("verdict") in VERDICTS for r in rules
        ):
            raise wrong("rules must be a list of {rule, verdict: pass|fail, ...}", rules)
        if not isinstance(found.get("challenger_md5"), str | None):
            raise wrong("challenger_md5 must be text", found.get("challenger_md5"))
        if not isinstance(found.get("reference"), dict | None):
            raise wrong("reference must be an object", found.get("reference"))
        return cls(
            promote=found["promote"],
            reason=found["reason"],
            champion=found["champion"],
            rules=tuple(rules),
            challenger_md5=found.get("challenger_md5"),
            reference=found.get("reference"),
            document=found,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> GateDecision:
        """The decision in a file; a UserError when it is missing, not JSON or not a decision."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(problem(str(path), f"cannot be read ({exc.strerror})", None, "Run `dvc repro`")) from None
        return cls.parse(text, where=str(path))

    @classmethod
    def at_commit(cls, repo: str | Path, commit: str) -> GateDecision | None:
        """The decision git holds at `commit`, or None when that commit has none."""
        text = vcs.show_file(commit, paths.GATE_DECISION, cwd=repo)
        return None if not text else cls.parse(text, where=f"{paths.GATE_DECISION} at commit {commit[:8]}")

    @classmethod
    def readable_at(cls, repo: str | Path, commit: str) -> tuple[GateDecision | None, str | None]:
        """(the decision at `commit` or None, why it could not be read or None): for promotion and
        history, where a hand-broken file at an old commit must not lock the registry (a prod
        promotion then needs --force, as with no decision)."""
        try:
            return cls.at_commit(repo, commit), None
        except UserError as exc:
            log.warning("%s", exc)
            return None, str(exc)

    @classmethod
    def parse(cls, text: str, *, where: str) -> GateDecision:
        try:
            found = json.loads(text)
        except ValueError as exc:
            raise UserError(problem(where, f"is not valid JSON ({exc})", None, "Run the gate again")) from None
        return cls.from_dict(found, where=where)

    @property
    def champion_version(self) -> str | None:
        return self.champion.get("version")

    def summary(self) -> dict[str, Any]:
        """What a registry tag message keeps of it."""
        return {"promote": self.promote, "reason": self.reason}

    def to_dict(self) -> dict[str, Any]:
        return dict(self.document)

    def write(self, out: Path) -> None:
        """decision.json and decision.md in `out` (reports/gate)."""
        write_json(self.to_dict(), out / Path(paths.GATE_DECISION).name)
        with atomic_path(out / Path(paths.GATE_DECISION_MD).name) as tmp:
            tmp.write_text(decision_markdown(self.document), encoding="utf-8")


def write_decision(decision: Mapping[str, Any], out: Path) -> None:
    """What the gate stage calls: the decision `evaluate_gate` returned, checked and written."""
    GateDecision.from_dict(dict(decision), where="the gate's decision").write(out)


def decision_markdown(decision: Mapping[str, Any]) -> str:
    verdict = "PROMOTE" if decision["promote"] else "KEEP THE CHAMPION"
    champion = decision["champion"].get("version") or "none"
    lines = [
        f"# Gate: {verdict}",
        "",
        f"{decision['reason']}.",
        "",
        f"Champion: {champion} (commit {str(decision['champion'].get('commit') or '-')[:8]}). "
        f"Test rows: {decision['test_rows']} (hash {decision['test_rows_hash']}).",
    ]
    reference = decision.get("reference")
    if reference:
        lines[-1] += (
            f" Frozen reference set: {reference['rows']} rows of {reference['path']} at commit "
            f"{reference['commit'][:8]} (hash {reference['rows_hash']})."
        )
    if decision.get("rules"):
        lines += [
            "",
            "| rule | metric | challenger | champion | value | required | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        keys = ("rule", "metric", "challenger", "champion", "value", "required", "verdict")
        lines += ["| " + " | ".join(str(r.get(k, "-")) for k in keys) + " |" for r in decision["rules"]]
    boot = decision.get("bootstrap")
    if boot:
        lines += [
            "",
            f"Bootstrap ({boot['samples']} paired resamples): improvement {boot['mean']:.4f}, "
            f"{boot['confidence']:.0%} interval [{boot['lower']:.4f}, {boot['upper']:.4f}].",
        ]
    return "\n".join(lines) + "\n"
