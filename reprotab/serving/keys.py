"""API keys for `reprotab serve`: making, listing and removing them, and checking one per request.

    reprotab serve keys add NAME --scope predict [--scope read ...] [--file PATH]
    reprotab serve keys list [--file PATH]
    reprotab serve keys remove NAME [--file PATH]

A key reads `rtk_<key id>_<secret>` and is shown once, when made. The key file keeps, per key, its
name, key id, scopes, creation time, a random salt and sha256(salt + secret); never the secret, so a
leaked file lets no one in. A fast salted hash is enough here, unlike for passwords: the secret is
256 random bits, so there is nothing to guess by brute force, and checking a key on every request
costs microseconds instead of the tens of milliseconds of a slow password hash. The file holds
`{"format": 1, "keys": [...]}`, is written atomically with mode 0600, and one readable by group or
others is refused. The key is never taken on the command line (it would stay in shell history and
the process list) and never logged.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reprotab.errors import UserError, one_of, problem
from reprotab.runner import stage_main

SCOPES = ("predict", "read", "admin")
DEFAULT_FILE = Path("secrets/api-keys.json")
FORMAT = 1
PREFIX = "rtk"

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_SALT = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# token_urlsafe(32): 32 random bytes as 43 URL-safe base64 characters, no padding
_PRESENTED = re.compile(rf"{PREFIX}_([0-9a-f]{{8}})_([A-Za-z0-9_-]{{43}})")
_RESTORE = "Restore it from a backup, or remove it and add the keys again"
_FIELDS = ("name", "key_id", "salt", "sha256", "scopes", "created")


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode("ascii")).digest()


@dataclass(frozen=True)
class Key:
    """Who a request's key belongs to and what it may do. Scopes are independent and explicit
    (`predict` does not grant `read`, nor `admin` grant `predict`), except that `admin` implies
    `read`: whoever may manage the service may also look at it."""

    name: str
    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)


@dataclass(frozen=True)
class _Stored:
    key: Key
    salt: bytes
    digest: bytes
    created: str


class KeyRing:
    """The keys of one key file, checked per request without ever holding a secret."""

    def __init__(self, stored: Iterable[_Stored]) -> None:
        self._by_id = {s.key.key_id: s for s in stored}
        # compared against when the id is unknown, so the time taken does not tell which ids exist
        self._dummy_salt = secrets.token_bytes(16)
        self._dummy_digest = secrets.token_bytes(32)

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """The key file at `path`, or one UserError saying what is wrong with it and how to fix it."""
        return cls(_read(Path(path)))

    def __len__(self) -> int:
        return len(self._by_id)

    def authenticate(self, presented: str | None) -> Key | None:
        """The key `presented` is, or None for a missing, malformed, unknown or wrong one."""
        if presented is None:
            return None
        match = _PRESENTED.fullmatch(presented)
        if match is None:
            return None
        key_id, secret = match.groups()
        stored = self._by_id.get(key_id)
        if stored is None:
            hmac.compare_digest(_digest(self._dummy_salt, secret), self._dummy_digest)
            return None
        return stored.key if hmac.compare_digest(_digest(stored.salt, secret), stored.digest) else None

    @staticmethod
    def from_header(authorization: str | None, x_api_key: str | None) -> str | None:
        """The key sent as `Authorization: Bearer <key>` or else as `X-API-Key: <key>`; None if neither."""
        if authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
        if x_api_key and x_api_key.strip():
            return x_api_key.strip()
        return None


# --- the key file ----------------------------------------------------------------------------


def _read(path: Path) -> list[_Stored]:
    """Every key in the file, checked: one UserError for the first thing wrong."""
    where = str(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UserError(
            problem(
                where,
                "no API key file here",
                fix=f"Make the first key with `reprotab serve keys add NAME --scope predict --file {path}`",
            )
        ) from None
    if not stat.S_ISREG(mode):
        raise UserError(problem(where, "must be a key file", "a directory" if stat.S_ISDIR(mode) else "not a file"))
    if os.name == "posix" and mode & 0o077:
        raise UserError(
            problem(
                where,
                "must be readable and writable by its owner only (mode 600), as it decides who gets in",
                f"mode {mode & 0o777:04o}",
                f"Run `chmod 600 {path}`",
            )
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise UserError(
            problem(
                where,
                "cannot be read by the user the service runs as",
                None,
                "Give it to that user (`chown`; uid 10001 in the image) with mode 600",
            )
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(problem(where, "is not a readable JSON key file", str(exc), _RESTORE)) from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or "format" not in document:
        raise UserError(
            problem(
                where,
                f'must hold {{"format": {FORMAT}, "keys": [...]}}',
                type(document).__name__ if not isinstance(document, dict) else sorted(document),
                _RESTORE,
            )
        )
    if document["format"] != FORMAT:
        raise UserError(
            problem(
                where,
                f"has key file format {document['format']!r}; this version reads format {FORMAT}",
                fix="Use the version of this project that wrote it",
            )
        )
    stored = [_entry(f"{where}: keys[{k}]", entry) for k, entry in enumerate(document["keys"])]
    for field, of in (("name", lambda s: s.key.name), ("key id", lambda s: s.key.key_id)):
        seen: set[str] = set()
        for s in stored:
            if of(s) in seen:
                raise UserError(
                    problem(where, f"each key's {field} must be unique", f"{of(s)!r} twice", "Remove one of them")
                )
            seen.add(of(s))
    return stored


def _entry(where: str, entry: Any) -> _Stored:
    if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
        fields = sorted(entry) if isinstance(entry, dict) else type(entry).__name__
        raise UserError(problem(where, f"must have exactly the fields {', '.join(_FIELDS)}", fields))
    for field, pattern in (("name", _NAME), ("key_id", _KEY_ID), ("salt", _SALT), ("sha256", _DIGEST)):
        if not isinstance(entry[field], str) or not pattern.fullmatch(entry[field]):
            raise UserError(problem(f"{where}.{field}", f"must match {pattern.pattern}", entry[field]))
    scopes = entry["scopes"]
    if not isinstance(scopes, list) or not scopes:
        raise UserError(problem(f"{where}.scopes", "must be a non-empty list", scopes))
    for scope in scopes:
        if scope not in SCOPES:
            raise UserError(one_of(f"{where}.scopes", scope, SCOPES))
    if not isinstance(entry["created"], str):
        raise UserError(problem(f"{where}.created", "must be an ISO time", entry["created"]))
    return _Stored(
        Key(entry["name"], entry["key_id"], frozenset(scopes)),
        bytes.fromhex(entry["salt"]),
        bytes.fromhex(entry["sha256"]),
        entry["created"],
    )


def _write(path: Path, stored: list[_Stored]) -> None:
    """Replace the file in one step: a reader sees the old keys or the new ones, never half a file,
    and the secrets' hashes are never readable by others, not even for a moment."""
    document = {
        "format": FORMAT,
        "keys": [
            {
                "name": s.key.name,
                "key_id": s.key.key_id,
                "salt": s.salt.hex(),
                "sha256": s.digest.hex(),
                "scopes": [scope for scope in SCOPES if scope in s.key.scopes],
                "created": s.created,
            }
            for s in stored
        ],
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def add_key(path: str | Path, name: str, scopes: Iterable[str]) -> str:
    """Add a key named `name` with `scopes` to the file (made if missing) and return the full key,
    the only time it exists outside the caller's hands."""
    path = Path(path)
    scopes = list(scopes)
    if not _NAME.fullmatch(name):
        raise UserError(
            problem("key name", "must be 1 to 64 letters, digits, dots, dashes or underscores", name, "Pick another")
        )
    if not scopes:
        raise UserError(problem("--scope", "a key needs at least one scope", fix=f"Give one of {', '.join(SCOPES)}"))
    for scope in scopes:
        if scope not in SCOPES:
            raise UserError(one_of("--scope", scope, SCOPES))
    stored = _read(path) if path.exists() else []
    if any(s.key.name == name for s in stored):
        raise UserError(
            problem("key name", f"a key of this name is already in {path}", name, "Remove it first or pick another")
        )
    taken = {s.key.key_id for s in stored}
    key_id = secrets.token_hex(4)
    while key_id in taken:
        key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    stored.append(_Stored(Key(name, key_id, frozenset(scopes)), salt, _digest(salt, secret), created))
    _write(path, stored)
    return f"{PREFIX}_{key_id}_{secret}"


def remove_key(path: str | Path, name: str) -> None:
    """Remove the key named `name`: requests with it are refused once the service reloads the file."""
    path = Path(path)
    stored = _read(path)
    names = [s.key.name for s in stored]
    if name not in names:
        raise UserError(one_of(f"key name in {path}", name, names) if names else problem(str(path), "holds no keys"))
    _write(path, [s for s in stored if s.key.name != name])


def list_keys(path: str | Path) -> list[dict[str, Any]]:
    """Name, key id, scopes and creation time of each key; never the salts or hashes."""
    return [
        {
            "name": s.key.name,
            "key_id": s.key.key_id,
            "scopes": [scope for scope in SCOPES if scope in s.key.scopes],
            "created": s.created,
        }
        for s in _read(Path(path))
    ]


# --- the command -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reprotab serve keys",
        description="API keys for the service. A key is shown once, when made; the file keeps only its hash.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    add = commands.add_parser("add", help="make a key and print it once", description="Make a key and print it once.")
    add.add_argument("name", help="who or what uses the key, e.g. ci or dashboard")
    add.add_argument(
        "--scope", action="append", default=[], help=f"what the key may do: {', '.join(SCOPES)} (repeat for more)"
    )
    listing = commands.add_parser("list", help="the keys, without secrets", description="The keys, without secrets.")
    remove = commands.add_parser("remove", help="remove a key", description="Remove a key.")
    remove.add_argument("name", help="the key's name, as `list` shows it")
    for sub in (add, listing, remove):
        sub.add_argument("--file", type=Path, default=DEFAULT_FILE, help=f"the key file (default: {DEFAULT_FILE})")
    return parser


def _table(rows: list[dict[str, Any]]) -> str:
    columns = ["name", "key_id", "scopes", "created"]
    cells = [[",".join(r[c]) if c == "scopes" else str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c), *(len(r[k]) for r in cells)]) for k, c in enumerate(columns)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in [columns, *cells]
    )


@stage_main("serve-keys", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    """`reprotab serve keys ...`; `argv` starts after the word `keys`."""
    args = _parser().parse_args(argv)
    if args.command == "add":
        key = add_key(args.file, args.name, args.scope)
        print(key)  # stdout only: never through logging, which also writes to reports/logs/
        sys.stdout.flush()
        print(
            f"This key cannot be shown again; keep it secret and send it as "
            f'curl -H "Authorization: Bearer $KEY" ... (or X-API-Key: $KEY). Kept as {args.name!r} in {args.file}.',
            file=sys.stderr,
        )
    elif args.command == "list":
        rows = list_keys(args.file)
        print(_table(rows) if rows else f"no keys in {args.file}")
    else:
        remove_key(args.file, args.name)
        print(f"removed key {args.name!r} from {args.file}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
