"""What the service serves now, and how it changes while it runs (hot promotion).

A `Deployment` is one consistent set of models (champion, optional canary and shadow, the canary's
share, the request validator of their features). The `Holder` keeps the current one; a request
takes `holder.current` once at its start and uses nothing else, so every response comes from one
set of models even while a new one is swapped in: a swap is one reference assignment.

Each role comes from a `Source`: a model file, a registered version (never changes) or a registry
stage (changes when the registry moves). `Holder.reload` is called by a poller (every
`serve.poll_seconds`), by SIGHUP and by `POST /admin/reload`. It first compares a fingerprint of
the registry's tags (one `git for-each-ref`), then what each stage holds, and only then loads:
the new bundle is read through the registry (its sha256 pinned at registration, see
reprotab/registry/versions.py `load`), checked against the champion's features, warmed, and only
then made current. A model that fails any of that leaves the old set serving; why is logged and
shown in /metadata (`reload.error`), and the same registry state is not retried until the tags
change again or a reload is forced. A registry rollback is a new assignment, so it swaps back the
same way.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from reprotab import paths, vcs
from reprotab.errors import UserError, problem
from reprotab.registry.gate_decision import GateDecision
from reprotab.serving.payload import rows_validator
from reprotab.serving.routing import Served, route_of, warm
from reprotab.serving.scoring import local_version, resolve_model

log = logging.getLogger(__name__)
ROLES = ("champion", "canary", "shadow")


@dataclass(frozen=True)
class Source:
    """Where a role's model comes from: a file, a registered version, or a registry stage."""

    path: str | None = None
    version: str | None = None
    stage: str | None = None
    repo: str = "."
    flag: str = "--model"  # the option that named it, for messages

    @property
    def moves(self) -> bool:
        """Whether what it names can change while the service runs (a stage, or a file rewritten)."""
        return self.version is None

    def describe(self) -> str:
        return f"stage {self.stage}" if self.stage else f"version {self.version}" if self.version else f"{self.path}"


@dataclass(frozen=True)
class Deployment:
    """One consistent set of served models."""

    champion: Served
    canary: Served | None = None
    shadow: Served | None = None
    canary_share: float = 0.0
    validator: TypeAdapter | None = field(default=None, compare=False)
    canary_stopped: str | None = None  # why the service stopped routing to the canary, if it did

    def answering(self, request_id: str) -> tuple[str, Served]:
        """(route, model) for a request: the canary for its deterministic share of request ids."""
        if self.canary is None or self.canary_stopped:
            return "champion", self.champion
        route = route_of(request_id, self.canary_share)
        return route, self.canary if route == "canary" else self.champion

    def roles(self) -> dict[str, str | None]:
        canary = None if self.canary is None or self.canary_stopped else self.canary.version
        shadow = None if self.shadow is None else self.shadow.version
        return {"champion": self.champion.version, "canary": canary, "shadow": shadow}


def assemble(
    champion: Served, *, canary: Served | None = None, shadow: Served | None = None, canary_share: float = 0.0
) -> Deployment:
    """A deployment of these models, checked (same features and id column) and warmed; a canary
    that is the champion's own version is dropped (after a promotion both stages hold it)."""
    schema = champion.model.schema
    if canary is not None and canary.version == champion.version:
        canary = None
    for role, other in (("canary", canary), ("shadow", shadow)):
        if other is not None and tuple(other.model.schema.features) != tuple(schema.features):
            raise UserError(
                problem(
                    f"--{role}",
                    "must take the same feature columns as the champion",
                    f"{list(other.model.schema.features)} vs {list(schema.features)}",
                )
            )
        if other is not None and other.model.schema.id_column != schema.id_column:  # rows echo and log it
            raise UserError(
                problem(
                    f"--{role}",
                    "must name the same id column as the champion",
                    f"{other.model.schema.id_column} vs {schema.id_column}",
                )
            )
    for served in (champion, canary, shadow):
        if served is not None:
            warm(served)
    return Deployment(champion, canary, shadow, canary_share if canary else 0.0, rows_validator(schema))


def load_served(source: Source) -> Served:
    """The model a source names now, with the gate's decision about that very model: read at the
    registered version's own commit, or beside a model file in its workspace."""
    model, info = resolve_model(
        source.path, stage=source.stage, version=source.version, repo=source.repo, where=source.flag
    )
    gate = None
    try:
        if info.get("commit"):
            decision = GateDecision.at_commit(source.repo, info["commit"])
        else:
            found = Path(info["path"]).resolve().parent.parent / paths.GATE_DECISION
            decision = GateDecision.from_json(found) if found.is_file() else None
        gate = decision.to_dict() if decision else None
    except UserError as exc:
        log.warning("/metadata leaves the gate out: %s", exc)
    return Served(model, info, gate)


def same_contract(new: Served, old: Served) -> None:
    """A new champion must take the rows the old one took: clients built against the running
    service's contract would otherwise start getting 422s mid-flight."""
    a, b = new.model.schema, old.model.schema
    if (tuple(a.features), a.id_column, a.task) != (tuple(b.features), b.id_column, b.task):
        raise UserError(
            problem(
                f"version {new.version}",
                "takes other rows than the model serving (features, id column or task differ), so it is not "
                "swapped in while clients use the current contract",
                f"{list(a.features)} vs {list(b.features)}",
                "Restart the service to serve it, once clients send its features",
            )
        )


def tags_fingerprint(repo: str) -> str:
    """A digest of every tag in the repository: when it is unchanged, so is the registry."""
    found = vcs.git("for-each-ref", "--format=%(objectname) %(refname)", "refs/tags", cwd=repo, check=False)
    return hashlib.sha256(found.encode()).hexdigest()


def registry_now(repo: str) -> dict[str, str]:
    """{stage: version} as the registry's tags say now."""
    from reprotab.registry.state import gto_state

    return gto_state(repo)[1]


class Holder:
    """The deployment served now, and its reloads (one at a time)."""

    def __init__(
        self,
        deployment: Deployment,
        *,
        sources: dict[str, Source | None] | None = None,
        canary_share: float = 0.0,
        on_change: Callable[[Deployment], None] = lambda d: None,
    ) -> None:
        self.current = deployment
        self.sources = {role: (sources or {}).get(role) for role in ROLES}
        self.canary_share = canary_share
        self.on_change = on_change
        self.status: dict[str, Any] = {"checked": None, "outcome": None, "error": None, "swapped": None}
        self._lock = threading.Lock()
        self._seen: str | None = None  # the fingerprint last acted on (loaded or failed)

    def _wanted(self) -> dict[str, str | None]:
        """The version each moving role's source names now (None: a stage holding nothing)."""
        wanted: dict[str, str | None] = {}
        stages = None
        for role, source in self.sources.items():
            if source is None or not source.moves:
                continue
            if source.stage:
                stages = registry_now(source.repo) if stages is None else stages
                wanted[role] = stages.get(source.stage)
            elif source.path:
                wanted[role] = local_version(source.path) if Path(source.path).is_file() else None
        return wanted

    def _fingerprint(self) -> str:
        parts = []
        for source in self.sources.values():
            if source is not None and source.stage:
                parts.append(tags_fingerprint(source.repo))
            elif source is not None and source.path and source.moves:
                try:
                    stat = Path(source.path).stat()
                    parts.append(f"{source.path}:{stat.st_mtime_ns}:{stat.st_size}")
                except OSError:
                    parts.append(f"{source.path}:missing")
        return "|".join(parts)

    def reload(self, *, force: bool = False) -> dict[str, Any]:
        """Swap in what the sources name now, if it changed; the old set keeps serving otherwise."""
        with self._lock:
            started = time.perf_counter()
            self.status["checked"] = datetime.now(UTC).isoformat()
            try:
                fingerprint = self._fingerprint()
                if fingerprint == self._seen and not force:
                    return self._record("unchanged")
                current = self.current
                loaded = {role: getattr(current, role) and getattr(current, role).version for role in ROLES}
                target = {**loaded, **self._wanted()}
                if target["canary"] == target["champion"]:
                    target["canary"] = None  # the canary's stage holds the champion: no canary
                if target == loaded:
                    self._seen = fingerprint
                    return self._record("unchanged")
                if target["champion"] is None:
                    stage = self.sources["champion"].stage  # type: ignore[union-attr]
                    raise UserError(problem(f"stage {stage}", "holds no version now; the current model keeps serving"))
                pick = {
                    role: (
                        getattr(current, role)
                        if target[role] == loaded[role]
                        else load_served(self.sources[role])  # type: ignore[arg-type]
                        if target[role] is not None
                        else None
                    )
                    for role in ROLES
                }
                assert pick["champion"] is not None
                same_contract(pick["champion"], current.champion)
                deployment = assemble(
                    pick["champion"], canary=pick["canary"], shadow=pick["shadow"], canary_share=self.canary_share
                )
                if current.canary_stopped and deployment.canary is current.canary:  # the guard's word stands
                    deployment = replace(deployment, canary_stopped=current.canary_stopped)
            except Exception as exc:  # any failure leaves the old set serving
                self._seen = fingerprint if "fingerprint" in locals() else None
                log.error("reload failed; still serving %s: %s", self.current.champion.version, exc)
                return self._record("failed", error=str(exc))
            self._seen = fingerprint
            before = self.current.roles()
            self.current = deployment  # the swap: requests that started before keep their reference
            self.status["swapped"] = datetime.now(UTC).isoformat()
            self.on_change(deployment)
            log.info("swapped in %s (was %s) in %.1fs", deployment.roles(), before, time.perf_counter() - started)
            return self._record("swapped", before=before)

    def stop_canary(self, reason: str) -> None:
        """Route everything to the champion from now on (the live guard's verdict)."""
        with self._lock:
            if self.current.canary is None or self.current.canary_stopped:
                return
            self.current = replace(self.current, canary_stopped=reason)
            log.error("stopped routing to canary %s: %s", self.current.canary.version, reason)  # type: ignore[union-attr]
            self.on_change(self.current)

    def _record(self, outcome: str, *, error: str | None = None, before: dict | None = None) -> dict[str, Any]:
        self.status.update(outcome=outcome)
        if outcome != "unchanged":
            self.status["error"] = error
        result = {"outcome": outcome, "serving": self.current.roles(), "error": error}
        if before is not None:
            result["before"] = before
        return result


class Poller:
    """Calls `holder.reload` every `seconds` in a daemon thread until stopped."""

    def __init__(self, holder: Holder, seconds: float, *, on_result: Callable[[dict[str, Any]], None]) -> None:
        self.holder, self.seconds, self.on_result = holder, seconds, on_result
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reprotab-registry-poller", daemon=True)

    def start(self) -> None:
        if self.seconds > 0 and any(s is not None and s.moves for s in self.holder.sources.values()):
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.on_result(self.holder.reload())

    def stop(self) -> None:
        self._stop.set()
