"""The model registry: semantic versions and stages as git tags (GTO), models from DVC.

(Over 300 lines because every command that writes a tag shares the same write-then-verify of the
tag and the same refusals; reading the tags, the checks before a registration and the champion
pin are the modules named below.)

    register   tag HEAD's model as vX.Y.Z          (GTO tag  model@vX.Y.Z)
    promote    assign a version to staging or prod (GTO tag  model#<stage>#N); prod needs a positive
               gate decision recorded at the version's commit (reports/gate/decision.json), or
               `force` with a reason, which the tag message keeps
    rollback   assign the version that was in the stage before the current one again
    show       what each stage holds now, what it held before (archived), what a rollback restores
    history    every registration, promotion and rollback with time, commit and the gate's word
    load       the model of a stage or version, through `dvc.api.artifacts_show` and
               `reprotab.registry.champion.model_at`

There is no server: the tags are the registry and git pushes them. Which version a stage holds
is the one assigned to it last. GTO (sorted by time) and DVC (`artifacts_show`, the newest tag
naming the stage) both read it that way, but tag times have one-second resolution, so every tag
write waits for the next second and is checked afterwards: GTO and DVC must name the same
version. Nothing is ever unassigned or deprecated (DVC ignores those tags); a rollback is a new
assignment, and "archived" is derived from the sequence of assignments.

Reading the tags (versions, stages now, events, archived) is reprotab/registry/state.py; the
checks before a registration are reprotab/registry/checks.py; the champion pin and the reader of
a model at a commit are reprotab/registry/champion.py; the gate's decision a promotion reads is
reprotab/registry/gate_decision.py.

Promoting to prod also pins the champion in models/champion.json, which the gate stage reads
(a git-tracked dep, so the gate stays reproducible); commit it after promoting.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from reprotab import paths, vcs
from reprotab.data.tables import file_hash
from reprotab.errors import UserError, problem
from reprotab.model.served import TabularModel
from reprotab.registry.champion import ChampionPin, FrozenReference, model_at, read_pin
from reprotab.registry.checks import check_registrable, locked_md5
from reprotab.registry.gate_decision import GateDecision
from reprotab.registry.state import (
    ARTIFACT,
    check_stage,
    check_version,
    gto_state,
    history,
    read_events,
    replay,
    show,
)

log = logging.getLogger(__name__)


def _next_second(repo: Path) -> None:
    """Wait until the clock is past the newest tag's second, so tag times order the events."""
    stamps = vcs.git("for-each-ref", "--format=%(creatordate:unix)", f"refs/tags/{ARTIFACT}*", cwd=repo, check=False)
    newest = max((int(s) for s in stamps.split()), default=0)
    while time.time() < newest + 1:
        time.sleep(min(0.1, newest + 1 - time.time() + 0.01))


def _message(title: str, **meta: Any) -> str:
    return f"{title}\n\nreprotab: {json.dumps(meta, sort_keys=True, default=str)}"


def _verify(repo: Path, *, stage: str | None = None, version: str, tag: str) -> None:
    """GTO and DVC must name `version` for the stage (or the version's commit) after a tag write."""
    import dvc.api

    versions, now, _ = gto_state(repo)
    commit = versions[version]["commit"]
    asked = {"stage": stage} if stage else {"version": version}
    dvc_rev = dvc.api.artifacts_show(name=ARTIFACT, repo=str(repo), **asked)["rev"]
    gto_version = now.get(stage) if stage else version
    if gto_version != version or dvc_rev != commit:
        dvc_version = next((v for v, info in versions.items() if info["commit"] == dvc_rev), dvc_rev)
        raise UserError(
            problem(
                f"registry tag {tag}",
                f"GTO ({gto_version}) and DVC ({dvc_version}) disagree on what it names; expected {version}",
                None,
                f"Check the clock, delete the tag (`git tag -d '{tag}'`) and try again",
            )
        )


def _write_tag(repo: Path, write: Any, *, stage: str | None, version: str) -> str:
    from gto.exceptions import GTOException

    _next_second(repo)
    try:
        event = write()
    except GTOException as exc:
        raise UserError(problem("registry", str(exc))) from None
    _verify(repo, stage=stage, version=version, tag=event.tag)
    if not vcs.git("remote", cwd=repo, check=False):
        log.warning("no git remote: tag %s is local until you add one and `git push origin --tags`", event.tag)
    else:
        log.info("push the tag to share it: git push origin '%s'", event.tag)
    return event.tag


def next_version(versions: dict[str, Any], bump: str = "patch") -> str:
    """v1.0.0 first; then the highest registered version bumped."""
    from gto.versions import SemVer

    if not versions:
        return "v1.0.0"
    latest = max(versions, key=SemVer)
    return SemVer(latest).bump(**{f"bump_{bump}": True}).version


def register(repo: str | Path = ".", *, version: str | None = None, bump: str = "patch") -> dict[str, Any]:
    """Register HEAD's model as a new version (see reprotab/registry/checks.py for what is refused).
    A commit already registered, or a model file byte-identical to a registered version's, is refused."""
    import gto.api
    from gto.versions import SemVer

    repo = Path(repo)
    commit, md5, warnings = check_registrable(repo)
    versions, _, _ = gto_state(repo)
    taken = next((v for v, info in versions.items() if info["commit"] == commit), None)
    if taken:
        raise UserError(
            problem(
                "registry register",
                f"commit {commit[:8]} is already registered as {taken}",
                None,
                "Commit a new model (`dvc repro`, `git commit`) first",
            )
        )
    same = next((v for v, info in sorted(versions.items()) if locked_md5(repo, info["commit"]) == md5), None)
    if same:
        raise UserError(
            problem(
                "registry register",
                f"the model at HEAD is byte-identical to {same} (same md5 in dvc.lock), so it would be a second "
                "name for one model",
                md5,
                f"Use {same} (`reprotab registry promote {same} --stage ...`), or retrain and commit a new model",
            )
        )
    if version is not None:
        if not SemVer.is_valid(version):
            raise UserError(problem("--version", "must be a semantic version like v1.2.3", version))
        if version in versions:
            raise UserError(
                problem("--version", "is registered already", version, f"Use --version {next_version(versions)}")
            )
    version = version or next_version(versions, bump)
    for warning in warnings:
        log.warning("%s", warning)
    gate = GateDecision.at_commit(repo, commit)
    sha256 = file_hash(repo / paths.MODEL)  # check_registrable: the file is the one dvc.lock records
    meta = {"action": "register", "md5": md5, "sha256": sha256, "gate": _gate_summary(gate)}
    message = _message(f"Register model {version}", **meta)
    tag = _write_tag(
        repo,
        lambda: gto.api.register(str(repo), ARTIFACT, commit, version=version, message=message),
        stage=None,
        version=version,
    )
    return {
        "action": "register",
        "version": version,
        "commit": commit,
        "sha256": sha256,
        "tag": tag,
        "warnings": warnings,
    }


def _gate_summary(decision: GateDecision | None) -> dict[str, Any] | None:
    return None if decision is None else decision.summary()


def _assign(repo: Path, *, version: str, stage: str, commit: str, message: str) -> str:
    import gto.api

    # the pin is built before the tag is written: a reference that cannot be read changes nothing
    pin = ChampionPin(version=version, commit=commit, reference=_reference(repo, commit)) if stage == "prod" else None
    # force: a version that held the stage before is, to GTO, still assigned there
    tag = _write_tag(
        repo,
        lambda: gto.api.assign(str(repo), ARTIFACT, stage, version=version, message=message, force=True),
        stage=stage,
        version=version,
    )
    if pin is not None:
        pin.write(repo / paths.CHAMPION)
        log.info(
            "pinned %s as champion in %s: commit it (`git add %s && git commit`)",
            version,
            paths.CHAMPION,
            paths.CHAMPION,
        )
    return tag


def _reference(repo: Path, commit: str) -> FrozenReference:
    """The frozen reference set the gate judges every challenger on: kept from the current pin, so
    it never moves; frozen from this version's test split when none is pinned yet."""
    from reprotab.registry.reference import freeze_reference

    pinned = champion(repo).reference
    if pinned is not None:
        return pinned
    found = vcs.show_file(commit, paths.SCHEMA, cwd=repo)  # else DVC-tracked
    if not found:
        try:
            found = vcs.read_at(paths.SCHEMA, rev=commit, repo=repo).decode()
        except vcs.NotReadable:  # no schema there: every column counts in the leak check's row hashes
            found = "{}"
    return freeze_reference(commit, repo, id_column=json.loads(found).get("id_column"))


def promote(
    repo: str | Path = ".",
    *,
    version: str,
    stage: str,
    force: bool = False,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assign `version` to `stage`. Prod needs the gate's yes at the version's commit, or force + reason.
    `evidence`: a canary decision (reprotab/registry/canary.py), summed up in the tag's message."""
    repo = Path(repo)
    if force and not (reason or "").strip():
        raise UserError(problem("--force", "needs --reason, which the registry history keeps", None, '--reason "why"'))
    versions, now, stages = gto_state(repo)
    check_stage(stage, stages)
    check_version(version, versions)
    if now.get(stage) == version:
        raise UserError(problem("registry promote", f"{version} is in {stage} already", version))
    commit = versions[version]["commit"]
    gate, unreadable = GateDecision.readable_at(repo, commit)
    judged = locked_md5(repo, commit, paths.JUDGED) or locked_md5(repo, commit)  # the file the gate judged
    stale = gate is not None and gate.challenger_md5 not in (None, judged)
    overridden = stage == "prod" and (stale or not (gate and gate.promote))  # the history's "forced"
    if overridden:
        said = "no gate decision" if gate is None else f"the gate said no: {gate.reason}"
        if unreadable:
            said = "its gate decision cannot be read"
        if stale:
            said = "the gate decision there judged another model file (stale: the gate did not run after train)"
        fix = (
            "Keep the champion"
            if gate and not stale
            else f"Run `dvc repro`, commit {paths.GATE_DECISION}, register that commit"
        )
        if not force:
            raise UserError(
                problem(
                    "registry promote",
                    f"{version} cannot go to prod: {said} (in {paths.GATE_DECISION} at commit {commit[:8]})",
                    None,
                    f'{fix}; or override with --force --reason "..."',
                )
            )
        log.warning("forcing %s into prod although %s; reason: %s", version, said, reason)
    meta = {
        "action": "promote",
        "forced": overridden,
        "reason": reason,
        "gate": _gate_summary(gate),
        "replaces": now.get(stage),
    }
    if evidence is not None:
        meta["canary"] = {k: evidence.get(k) for k in ("verdict", "metric", "difference", "interval", "rows")}
    tag = _assign(
        repo,
        version=version,
        stage=stage,
        commit=commit,
        message=_message(f"Promote model {version} to {stage}", **meta),
    )
    return {"version": version, "stage": stage, "commit": commit, "tag": tag, **meta}


def rollback(repo: str | Path = ".", *, stage: str = "prod", reason: str | None = None) -> dict[str, Any]:
    """Assign again the version that held `stage` before the current one."""
    repo = Path(repo)
    versions, now, stages = gto_state(repo)
    check_stage(stage, stages)
    stacks, _ = replay(read_events(repo))
    stack = stacks.get(stage, [])
    if len(stack) < 2:
        held = f"nothing held it before {stack[-1]}" if stack else "no version has been in it"
        raise UserError(
            problem(
                "registry rollback",
                f"{stage} has no previous version to go back to: {held}",
                None,
                "Promote a version instead",
            )
        )
    target = stack[-2]
    commit = versions[target]["commit"]
    meta = {"action": "rollback", "forced": False, "reason": reason, "replaces": now.get(stage)}
    tag = _assign(
        repo, version=target, stage=stage, commit=commit, message=_message(f"Roll {stage} back to {target}", **meta)
    )
    return {"version": target, "stage": stage, "commit": commit, "tag": tag, **meta}


def load(*, stage: str | None = None, version: str | None = None, repo: str = ".") -> tuple[TabularModel, dict]:
    """The model a stage holds (or a version; with neither, the latest version) and
    {"version", "stage", "commit", "path"}; `repo` is a local path or a git URL with a DVC remote."""
    import dvc.api
    from dvc.exceptions import ArtifactNotFoundError

    if stage and version:
        raise UserError(problem("registry load", "takes a stage or a version, not both", f"{stage}, {version}"))
    versions, now, stages = gto_state(repo)
    if stage is not None:
        check_stage(stage, stages)
        if stage not in now:
            raise UserError(
                problem(
                    "stage",
                    "holds no version yet",
                    stage,
                    f"Promote one: `reprotab registry promote vX.Y.Z --stage {stage}`",
                )
            )
    if version is not None:
        check_version(version, versions)
    try:
        found = dvc.api.artifacts_show(name=ARTIFACT, stage=stage, version=version, repo=repo)
    except ArtifactNotFoundError:
        raise UserError(
            problem("registry", "no model version is registered", repo, "Run `reprotab registry register`")
        ) from None
    what = f"registry model {stage or version or 'latest'}"
    named = next((v for v, info in versions.items() if info["commit"] == found["rev"]), None)
    pinned = versions[named]["sha256"] if named else None
    if pinned is None:
        log.warning("%s was registered without a pinned digest (an older release): loaded unchecked", what)
    try:
        model, _ = model_at(found["rev"], repo=repo, path=found["path"], where=what, sha256=pinned)
    except vcs.NotReadable as exc:
        raise UserError(
            problem(
                what,
                f"cannot be read through DVC at commit {found['rev'][:8]} ({exc})",
                repo,
                "Run `dvc push` where it was trained; from a git URL the DVC remote must be one every clone "
                "reaches (S3, an absolute path), not a relative path",
            )
        ) from None
    return model, {"version": named, "stage": stage, "commit": found["rev"], "path": found["path"]}


def champion(repo: str | Path = ".") -> ChampionPin:
    """The champion pinned in models/champion.json, checked (its version None when none is)."""
    return read_pin(Path(repo) / paths.CHAMPION)


__all__ = [
    "ARTIFACT",
    "champion",
    "history",
    "load",
    "promote",
    "register",
    "rollback",
    "show",
]
