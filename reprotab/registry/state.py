"""What the registry's tags say: registered versions, what each stage holds, every event.

GTO reads the tags; which version a stage holds is the one assigned to it last (GTO sorted by
time, as `dvc.api.artifacts_show` reads it too). Our tag messages carry a JSON line
(`reprotab: {...}`: promote or rollback, forced, reason, the gate's word), so the history and the
"archived" versions (each one a later assignment replaced) are derived from the event sequence;
nothing is ever unassigned. A rollback walks back a per-stage stack of promotions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reprotab.errors import UserError, did_you_mean, one_of, problem
from reprotab.registry.gate_decision import GateDecision

ARTIFACT = "model"
STAGES = ("staging", "prod")  # as in .gto; the one read when a repository has none
META = re.compile(r"^reprotab: (\{.*\})\s*$", re.MULTILINE)


def gto_state(repo: str | Path) -> tuple[dict[str, dict], dict[str, str], list[str]]:
    """({version: {commit, created_at, sha256}}, {stage: version now}, allowed stages) as GTO reads the
    tags; `sha256` is the model file's digest its registration pinned (None for a version
    registered before digests were pinned)."""
    from gto.base import VersionSort
    from gto.exceptions import ArtifactNotFound
    from gto.registry import GitRegistry

    with GitRegistry.from_url(str(repo)) as registry:
        stages = list(registry.get_stages(allowed=True) or STAGES)
        try:
            artifact = registry.find_artifact(ARTIFACT)
        except ArtifactNotFound:
            return {}, {}, stages
        versions = {
            v.version: {
                "commit": v.commit_hexsha,
                "created_at": v.created_at,
                "sha256": tag_meta(v.registrations[-1].message).get("sha256"),
            }
            for v in artifact.get_versions()
            if v.is_registered
        }
        vstages = artifact.get_vstages(registered_only=True, versions_per_stage=1, sort=VersionSort.Timestamp)
        now = {stage: found[0].version for stage, found in vstages.items() if found}
    return versions, now, stages


def tag_meta(message: str | None) -> dict[str, Any]:
    """The metadata a registry tag message carries (the `reprotab: {...}` line), or {}."""
    found = META.search(message or "")
    return json.loads(found.group(1)) if found else {}


def check_stage(stage: str, stages: list[str]) -> None:
    if stage not in stages:
        raise UserError(one_of("stage", stage, stages) + " (stages are set in .gto)")


def check_version(version: str, versions: dict[str, Any]) -> None:
    if version not in versions:
        known = ", ".join(sorted(versions)) or "none yet"
        raise UserError(
            problem(
                "version",
                f"is not registered (registered: {known})",
                version,
                "Register it first: `reprotab registry register`",
            )
            + did_you_mean(version, versions)
        )


def read_events(repo: Path) -> list[dict[str, Any]]:
    """GTO's registrations and assignments, oldest first, with the metadata our tag messages carry."""
    import gto.api

    events = []
    for event in gto.api.history(str(repo), ARTIFACT, ascending=True):
        if event["event"] not in ("registration", "assignment"):
            continue
        meta = tag_meta(event["message"])
        action = "register" if event["event"] == "registration" else meta.get("action", "promote")
        events.append({**event, "action": action, "meta": meta})
    return events


def replay(found: list[dict[str, Any]]) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """Per stage the stack of versions a rollback walks back through, and every replaced version."""
    stacks: dict[str, list[str]] = {}
    archived: list[dict[str, Any]] = []
    for event in found:
        if event["action"] == "register":
            continue
        stack = stacks.setdefault(event["stage"], [])
        previous = stack[-1] if stack else None
        if event["action"] == "rollback" and len(stack) >= 2 and stack[-2] == event["version"]:
            stack.pop()
        else:
            stack.append(event["version"])
        if previous and previous != event["version"]:
            archived.append(
                {
                    "version": previous,
                    "stage": event["stage"],
                    "replaced_by": event["version"],
                    "at": event["timestamp"],
                }
            )
    return stacks, archived


def show(repo: str | Path = ".") -> dict[str, Any]:
    """Each stage's version now, what a rollback would restore, and every version a stage held before."""
    repo = Path(repo)
    versions, now, stages = gto_state(repo)
    stacks, archived = replay(read_events(repo))
    current = {
        stage: {
            "version": now.get(stage),
            "commit": versions[now[stage]]["commit"] if stage in now else None,
            "rollback_to": stacks[stage][-2] if len(stacks.get(stage, [])) >= 2 else None,
        }
        for stage in stages
    }
    return {
        "stages": current,
        "archived": list(reversed(archived)),
        "versions": {v: info["commit"] for v, info in versions.items()},
    }


def history(repo: str | Path = ".") -> list[dict[str, Any]]:
    """Every registration, promotion and rollback, oldest first, with the gate decision at its commit."""
    repo = Path(repo)
    decisions: dict[str, GateDecision | None] = {}
    rows = []
    for event in read_events(repo):
        commit = event["commit"]
        if commit not in decisions:
            decisions[commit] = GateDecision.readable_at(repo, commit)[0]  # unreadable: shown as none
        gate = decisions[commit]
        meta = event["meta"]
        rows.append(
            {
                "time": event["timestamp"].isoformat(),
                "action": event["action"],
                "version": event["version"],
                "stage": event["stage"],
                "commit": commit,
                "replaces": meta.get("replaces"),
                "gate": None if gate is None else gate.promote,
                "gate_reason": None if gate is None else gate.reason,
                "forced": bool(meta.get("forced")),
                "reason": meta.get("reason"),
                "canary": meta.get("canary"),  # the canary decision that moved it, if one did
                "author": event["author"],
                "tag": event["ref"],
            }
        )
    return rows
