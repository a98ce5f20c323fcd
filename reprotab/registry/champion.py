"""The champion pin, models/champion.json, and the model a past commit holds.

The pin names the version in prod and its commit, and the frozen reference set the gate judges
every challenger on (reprotab/registry/reference.py): {"version": "vX.Y.Z", "commit": "<sha>",
"reference": {...}}, or {"version": null} when no model is in prod yet. `reprotab registry
promote --stage prod` writes it (`ChampionPin.write`); the gate stage, the registry, retraining
and the MLflow mirror read it through `read_pin`, which checks it, so a hand-edited pin is one
clear error wherever it is read.

`model_at` is the one reader of a model file at a past commit (through DVC: cache or remote),
for the gate's champion (`champion_model`) and for `reprotab.registry.versions.load`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths, vcs
from reprotab.data.tables import write_json
from reprotab.errors import UserError, problem
from reprotab.model import served
from reprotab.model.served import TabularModel


@dataclass(frozen=True)
class FrozenReference:
    """The frozen reference set: the test split at `commit`, its rows' hash, and how many of its
    rows that commit's training rows already held (None in pins written before it was counted)."""

    commit: str
    path: str
    rows_hash: str
    rows: int | None = None
    in_training: int | None = None

    def to_dict(self) -> dict[str, Any]:
        found = {
            "commit": self.commit,
            "path": self.path,
            "rows": self.rows,
            "rows_hash": self.rows_hash,
            "in_training": self.in_training,
        }
        return {key: value for key, value in found.items() if value is not None}


@dataclass(frozen=True)
class ChampionPin:
    """models/champion.json, checked (see `read_pin`)."""

    version: str | None = None
    commit: str | None = None
    reference: FrozenReference | None = None

    def to_dict(self) -> dict[str, Any]:
        """The pin as written: {"version": null} without a champion."""
        found: dict[str, Any] = {"version": self.version}
        if self.commit is not None:
            found["commit"] = self.commit
        if self.reference is not None:
            found["reference"] = self.reference.to_dict()
        return found

    def write(self, path: Path) -> None:
        write_json(self.to_dict(), path)


def parse_pin(found: Any, *, where: str) -> ChampionPin:
    """A pin read from JSON, or a UserError naming `where` and what a pin must hold."""
    if not isinstance(found, dict) or (found.get("version") and not isinstance(found.get("commit"), str)):
        raise UserError(problem(where, 'must be {"version": "vX.Y.Z", "commit": "<sha>"} or {"version": null}', found))
    reference = found.get("reference")
    if reference is not None and not (
        isinstance(reference, dict) and all(isinstance(reference.get(k), str) for k in ("commit", "path", "rows_hash"))
    ):
        raise UserError(
            problem(f"{where} reference", "must hold commit, path and rows_hash (written by promote)", reference)
        )
    return ChampionPin(
        version=found.get("version") or None,
        commit=found.get("commit"),
        reference=None
        if reference is None
        else FrozenReference(
            commit=reference["commit"],
            path=reference["path"],
            rows_hash=reference["rows_hash"],
            rows=reference.get("rows"),
            in_training=reference.get("in_training"),
        ),
    )


def read_pin(path: Path) -> ChampionPin:
    """models/champion.json at `path`, checked; no file is no champion."""
    if not path.is_file():
        return ChampionPin()
    try:
        found = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(problem(str(path), f"is not valid JSON ({exc})", None, 'Write {"version": null}')) from None
    return parse_pin(found, where=str(path))


def _unreadable(exc: vcs.NotReadable, *, what: str, commit: str, version: str | None) -> UserError:
    return UserError(
        problem(
            paths.CHAMPION,
            f"{what} cannot be read at commit {commit[:8]} ({exc.kind}: {exc})",
            version,
            "Fetch it (`git fetch --tags`, `dvc pull`), or pin another champion",
        )
    )


def read_pinned_table(path: str, *, commit: str, repo: str | Path, what: str, version: str | None) -> pd.DataFrame:
    """A Parquet table (a file, or a folder of part files) at a commit the pin names."""
    try:
        frame: pd.DataFrame = vcs.read_parquet_at(path, rev=commit, repo=repo)
    except vcs.NotReadable as exc:
        raise _unreadable(exc, what=what, commit=commit, version=version) from None
    return frame


def model_at(
    rev: str, *, repo: str | Path, where: str, path: str = paths.MODEL, sha256: str | None = None
) -> tuple[TabularModel, str]:
    """The model file `path` at `rev` of `repo` (through DVC: git-tracked, cache or remote), loaded
    with the checks of `served.load`, and its md5; vcs.NotReadable when it cannot be read. With
    `sha256` (the digest a registration pinned) bytes with another digest are refused before they
    are loaded: bytes swapped in a cache or remote never reach the bundle loader."""
    data = vcs.read_at(path, rev=rev, repo=repo)
    found = hashlib.sha256(data).hexdigest()
    if sha256 is not None and found != sha256:
        raise UserError(
            problem(
                where,
                f"is not the model file its registration pinned: the bytes read at commit {rev[:8]} have "
                f"sha256 {found}, the registration pinned {sha256}; not loaded",
                path,
                "Fetch it again from a remote you trust (`dvc pull`), or register a new version",
            )
        )
    return served.loads(data, where=where, source=path), hashlib.md5(data).hexdigest()


def judged_path(commit: str, repo: str | Path = ".") -> str:
    """The model file the gate compares at `commit`: models/judged.zip where that commit's train
    wrote one (with train.refit all the shipped model.zip trained on the test rows too), else
    models/model.zip (every commit before judged.zip existed)."""
    from reprotab.registry.checks import locked_md5

    return paths.JUDGED if locked_md5(Path(repo), commit, paths.JUDGED) else paths.MODEL


def champion_model(pin: ChampionPin, repo: str | Path = ".") -> tuple[TabularModel | None, str | None]:
    """The pinned champion's judged model (`judged_path`) and its md5, read at its commit; (None,
    None) without a champion. Both sides of the gate are then models no test row trained."""
    if not pin.version or pin.commit is None:
        return None, None
    try:
        path = judged_path(pin.commit, repo)
        return model_at(pin.commit, repo=repo, where=f"champion {pin.version}", path=path)
    except vcs.NotReadable as exc:
        raise _unreadable(exc, what="the champion's model", commit=pin.commit, version=pin.version) from None
