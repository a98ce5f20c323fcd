"""The model file: a zip of JSON members and the booster in its own format, checked member by member.

    manifest.json    format, format version, family, kind, estimator class, library versions,
                     and every other member's size and sha256
    schema.json      the table's schema (reprotab/model/schema.py)
    featurizer.json  the featurizer plan (reprotab/model/plan.py)
    decision.json    the threshold and the calibrator (reprotab/model/calibration.py)
    booster.txt | booster.json | forest.bin | catboost.json | linear.json | ensemble.json
                                              the estimator (reprotab/model/boosters.py)

Nothing is unpickled and nothing in the file decides what code runs: the family picks one of
the loaders kept in code, and each member is checked before use (sizes before reading,
sha256, JSON shape, every index in range). The zip is written with fixed timestamps and
order, so the same model gives the same bytes (dvc.lock reproduces it). A file that fails any
check raises `BundleError` with the member and the reason; `read_members` bounds what it reads,
so a declared size or a compression ratio cannot exhaust memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

FORMAT = "reprotab-model"
FORMAT_VERSION = 3  # 3: the zip bundle (1 and 2 were pickles)
MANIFEST = "manifest.json"
MAX_MEMBER_BYTES = 1 << 30  # what one member may declare
MAX_JSON_BYTES = 256 << 20
MAX_RATIO = 200  # a member may inflate to at most this many times its stored size (and 1 MiB more)
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PICKLE_STARTS = (b"\x80",)  # joblib/pickle protocol 2+
CONVERT = (
    "Convert it once with `reprotab model convert OLD NEW` (it unpickles: only a file you trust), "
    "or retrain with `dvc repro`"
)


class BundleError(ValueError):
    """A model file that is not a well-formed bundle; the message names the member and the problem,
    `fix` what to do when it is not the usual (get a valid file)."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_members(members: dict[str, bytes], manifest: dict[str, Any]) -> bytes:
    """The bundle's bytes: the manifest (with each member's size and sha256 added) first, then the
    members in the order given, deflated, with fixed timestamps."""
    manifest = {
        **manifest,
        "members": {name: {"bytes": len(data), "sha256": digest(data)} for name, data in members.items()},
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in [(MANIFEST, json_bytes(manifest)), *members.items()]:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, data, compresslevel=6)
    return out.getvalue()


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def read_members(data: bytes, allowed: dict[str, set[str]]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and every member named in it, each checked against its size and sha256.

    `allowed` maps each family to its member names; any other name, a missing member, a
    duplicate or an unread extra is refused."""
    if data.startswith(PICKLE_STARTS):
        raise BundleError("is a pickle from an older version of this project, not a model bundle", fix=CONVERT)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise BundleError(f"not a readable zip ({exc})") from None
    for info in infos:  # the ratio bound in _read trusts compress_size: it must fit in the file
        if info.compress_size > len(data) - info.header_offset:
            raise BundleError(f"{info.filename}: declares {info.compress_size} compressed bytes, beyond the file")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise BundleError("holds a member name twice")
    by_name = {info.filename: info for info in infos}
    if MANIFEST not in by_name:
        raise BundleError(f"lacks {MANIFEST}")
    manifest = _json(_read(archive, by_name[MANIFEST], MAX_JSON_BYTES), MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{MANIFEST}: format must be {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version")
        newer = type(found) is int and found > FORMAT_VERSION
        raise BundleError(
            f"{MANIFEST}: has model format {found!r}; this version reads format {FORMAT_VERSION}",
            fix="Upgrade this project to the version that wrote it, or retrain with `dvc repro`" if newer else None,
        )
    family = manifest.get("family")
    if not isinstance(family, str) or family not in allowed:
        raise BundleError(f"{MANIFEST}: family must be one of {sorted(allowed)}, got {family!r}")
    declared = manifest.get("members")
    if not isinstance(declared, dict) or set(declared) != allowed[family]:
        raise BundleError(f"{MANIFEST}: members must be exactly {sorted(allowed[family])}")
    if set(by_name) != {MANIFEST, *declared}:
        extra = sorted(set(by_name) - {MANIFEST, *declared})
        missing = sorted(set(declared) - set(by_name))
        raise BundleError(f"members do not match the manifest (missing {missing}, not named {extra})")
    members = {}
    for name, entry in declared.items():
        if not isinstance(entry, dict) or set(entry) != {"bytes", "sha256"}:
            raise BundleError(f"{MANIFEST}: members.{name} must give bytes and sha256")
        size, expected = entry["bytes"], entry["sha256"]
        if type(size) is not int or not 0 <= size <= MAX_MEMBER_BYTES or not isinstance(expected, str):
            raise BundleError(f"{MANIFEST}: members.{name} declares an impossible size or digest")
        if by_name[name].file_size != size:
            raise BundleError(f"{name}: is {by_name[name].file_size} bytes, the manifest says {size}")
        content = _read(archive, by_name[name], size)
        if digest(content) != expected:
            raise BundleError(f"{name}: sha256 {digest(content)[:12]}… differs from the manifest's {expected[:12]}…")
        members[name] = content
    return manifest, members


def member_json(members: dict[str, bytes], name: str) -> Any:
    if len(members[name]) > MAX_JSON_BYTES:
        raise BundleError(f"{name}: larger than {MAX_JSON_BYTES} bytes")
    return _json(members[name], name)


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, refusing before inflating what would pass `limit` or the ratio bound."""
    if info.file_size > limit or info.file_size > MAX_RATIO * max(info.compress_size, 1) + (1 << 20):
        raise BundleError(f"{info.filename}: declares {info.file_size} bytes from {info.compress_size} stored")
    if info.flag_bits & 0x1:
        raise BundleError(f"{info.filename}: is encrypted")
    try:
        with archive.open(info) as handle:
            content = handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
        raise BundleError(f"{info.filename}: cannot be read ({type(exc).__name__}: {exc})") from None
    except Exception as exc:  # zlib.error and friends from a damaged stream
        raise BundleError(f"{info.filename}: cannot be read ({type(exc).__name__}: {exc})") from None
    if len(content) != info.file_size:
        raise BundleError(f"{info.filename}: holds {len(content)} bytes, declares {info.file_size}")
    return content


def _json(content: bytes, name: str) -> Any:
    try:
        return json.loads(content, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{name}: is not JSON ({str(exc)[:120]})") from None


def _no_constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")
