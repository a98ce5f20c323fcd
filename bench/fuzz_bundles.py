"""Fuzzing of the model bundle: mutated model files through `served.loads`, each case in a worker process.

    .venv/bin/python bench/fuzz_bundles.py [--cases 100000] [--seed 0] [--workers N] [--timeout 10]
                                           [--max-minutes M] [--bases DIR] [--kinds k1,k2]
    .venv/bin/python bench/fuzz_bundles.py --seed 0 --case 1234 --save /tmp/case.zip   # one case again

Fifteen small real models (LightGBM, XGBoost, random forest, CatBoost and linear; binary, multiclass
and regression, with calibrators, thresholds, missing indicators, scaling and target encoding among them) are
trained in memory (a few seconds; `--bases DIR` keeps them, so a later run or a replay uses the
same bytes). Case i takes the mutation kind `KINDS[i % len(KINDS)]`, and a base model and the
mutation's details from a generator seeded with (seed, i), so a case is the same bytes in any
run, on any number of workers. The kinds (details in each `_kind_*` function):

  flip_bytes               bytes or bits flipped anywhere in the file (zip structure included)
  truncate_file            the file cut short
  truncate_member_stale    a member cut short, the manifest's size and sha256 left as they were
  truncate_member_sealed   a member cut short, the manifest's size and sha256 recomputed
  flip_member              bytes flipped inside a member, size and sha256 recomputed
  tree_index_range         an out-of-range split feature / child / split index in one tree (the four tree
                           families)
  tree_cycle               a child pointing to its own node or an ancestor (some cases: to a later node, a DAG;
                           the families with child pointers)
  json_featurizer          JSON-level edits of featurizer.json (delete or add a key, change a type or a
  json_schema              number, lengthen or shorten a list, NaN / Infinity / 1e400 / huge integers),
  json_decision            sha256 recomputed
  json_manifest            the same on manifest.json (which has no digest)
  json_booster             the same on XGBoost's booster.json, CatBoost's catboost.json, the linear
                           model's linear.json and on the forest's header line
  lightgbm_text            token and line edits of LightGBM's model text (tree_sizes recomputed mostly)
  forest_arrays            special values (NaN, inf, -1, huge) in the forest's node arrays
  catboost_model           edits of catboost.json where CatBoost's loader trusts it: split indices, leaf and
                           weight counts, depth, special leaf values and borders, the loss, class labels, bias,
                           the feature list, categorical or non-symmetric parts, a key given twice
  linear_arrays            special values, wrong shapes and types, a zero scale, another kind in linear.json
  swap_member              a member from another model (other kind, other family, family renamed too)
  manifest_missing_file    the manifest naming a file the zip lacks (or the zip lacking one)
  extra_member             a member the manifest does not name (or names on top of the family's)
  huge_size_manifest       a huge, negative or non-integer size in the manifest
  huge_size_header         lying sizes in the zip's central directory and local headers
  zip_bomb                 a member padded with hundreds of MB of one byte (and some cases whose
                           central directory also claims a large compressed size)
  duplicate_name           a member name (manifest.json included) twice in the zip

Each case runs `served.loads(bytes)` in a worker subprocess (`--workers`, default one per core)
with a per-case timeout, and ends as one outcome:

  refused       a UserError: what every damaged file must give
  loaded        no error, and the model passes the checks below (kept apart: same predictions as
                the base model or changed ones, e.g. a leaf value edited with its digest recomputed)
  crash         any other exception, or the worker dying (a segfault: the signal is named)
  hang          the case ran past --timeout
  memory        the case raised the worker's peak memory by more than --memory-mb (Linux: the peak
                is reset before each case), or raised MemoryError (each worker is capped at its
                warmed-up address space + 4 GiB)
  wrong_accept  loaded, but it should not have: the mutation must be refused (an index out of
                range, a digest that no longer matches, a name the family does not have, a member
                inflating past the documented 200x + 1 MiB), or a mutation that cannot change the
                model (no digest recomputed) changed its predictions, or the loaded model predicts
                non-finite numbers, probabilities outside [0, 1] or rows not summing to 1, or fails
                to predict at all

A loaded model is scored on demo rows (missing values and unseen categories included) and on a
matrix of random and extreme feature values. Prints a table of outcomes per kind and the failures
(case, kind, base, mutation, message) with the command that replays each; exits 1 when any case
crashed, hung, blew the memory bound or was wrongly accepted.

`fuzz(bundles, cases, seed)` is the same as a function (tests/unit/model/test_fuzz_bundles.py).
Workers are subprocesses running this file with `--worker DIR` (bench/ is scripts, not a package,
so a spawned multiprocessing worker could not import this module by name); they speak JSON lines.
A worker imports the libraries and loads the base models once, with OMP_NUM_THREADS=1 so no
OpenMP pool exists, then serves cases from a forked child: a case that kills its child (a
segfault) or overruns (the child is SIGKILLed) costs a fresh fork, not a fresh interpreter.
A child serves many cases, so a crash could in principle follow from an earlier case's silent
memory damage: `--case N` replays one case in a fresh, non-forking worker to tell (a native
out-of-bounds read may also crash only on some runs: replay a few times). `--no-fork` runs every
worker that way.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import random
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MANIFEST = "manifest.json"
BOOSTER_MEMBERS = {
    "lightgbm": "booster.txt",
    "xgboost": "booster.json",
    "random_forest": "forest.bin",
    "catboost": "catboost.json",
    "linear": "linear.json",
}
MAX_MEMBER_BYTES = 1 << 30  # reprotab/model/bundle.py's limits, restated: the fuzzer's expectations
MAX_JSON_BYTES = 256 << 20
MAX_RATIO = 200
DOS_DATE, DOS_TIME = (0 << 9) | (1 << 5) | 1, 0  # 1980-01-01 00:00:00, the bundle's fixed timestamp
FAILURES = ("crash", "hang", "memory", "wrong_accept")
FAMILIES = ("lightgbm", "xgboost", "random_forest", "catboost", "linear")
TREE_FAMILIES = ("lightgbm", "xgboost", "random_forest", "catboost")
LINKED_TREE_FAMILIES = ("lightgbm", "xgboost", "random_forest")  # trees stored as child pointers
TASK_KINDS = ("binary", "multiclass", "regression")
SMALL: dict[str, dict[str, Any]] = {  # few, shallow trees: a load takes milliseconds
    "lightgbm": {"n_estimators": 5, "num_leaves": 7, "learning_rate": 0.3, "n_jobs": 1},
    "xgboost": {"n_estimators": 5, "max_depth": 3, "learning_rate": 0.3, "n_jobs": 1},
    "random_forest": {"n_estimators": 4, "max_depth": 5, "min_samples_leaf": 5, "n_jobs": 1},
    "catboost": {"n_estimators": 5, "depth": 3, "learning_rate": 0.3, "thread_count": 1},
    "linear": {"alpha": 1.0},
}
CALIBRATION = {  # per family and kind; regression has none
    ("lightgbm", "binary"): "sigmoid",
    ("xgboost", "binary"): "isotonic",
    ("random_forest", "binary"): "none",
    ("lightgbm", "multiclass"): "isotonic",
    ("xgboost", "multiclass"): "sigmoid",
    ("random_forest", "multiclass"): "none",
    ("catboost", "binary"): "isotonic",
    ("linear", "binary"): "none",
    ("catboost", "multiclass"): "none",
    ("linear", "multiclass"): "sigmoid",
}


# ---- base models ------------------------------------------------------------------------------------


def train_bases(rows: int = 600, seed: int = 1) -> dict[str, bytes]:
    """Fifteen small real model bundles, `family-kind` → bytes (about 4 s)."""
    from reprotab.data.demo import generate
    from reprotab.params.loader import parse_params
    from reprotab.pipeline import run
    from tests.helpers import base_params

    data = generate(rows=rows, seed=seed)
    bundles = {}
    for family in FAMILIES:
        for kind in TASK_KINDS:
            raw = base_params(seed=seed, model=family)
            raw["hyperparameters"][family] = dict(SMALL[family])
            if kind == "regression":
                raw.update(task="regression", metric="rmse")
                raw["data"].update(target="next_month_spend", drop_columns=["churned"])
                raw["featurize"].update(missing_indicators=False, max_categories=4, high_cardinality="target")
            else:
                raw["train"]["calibration"] = CALIBRATION[family, kind]
            if kind == "multiclass":
                raw["metric"] = "accuracy"
                raw["data"].update(target="contract", drop_columns=["churned", "next_month_spend"])
                raw["featurize"].update(scale=True, max_categories=3, high_cardinality="target")
            bundles[f"{family}-{kind}"] = run(data, parse_params(raw), splits_to_score=()).model.to_bytes()
    return bundles


def load_or_train_bases(directory: Path | None) -> dict[str, bytes]:
    """The bases kept in `directory` (`<name>.zip`), or freshly trained (and kept there when given)."""
    if directory is not None and directory.is_dir() and sorted(directory.glob("*.zip")):
        return {path.stem: path.read_bytes() for path in sorted(directory.glob("*.zip"))}
    bundles = train_bases()
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in bundles.items():
            (directory / f"{name}.zip").write_bytes(data)
    return bundles


# ---- zip plumbing -------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One zip member as written: its name, bytes and (for lies) header fields that override the truth."""

    name: str
    content: bytes
    stored: bytes | None = None  # the compressed stream, when not simply deflate(content)
    crc: int | None = None
    size: int | None = None  # the uncompressed size both headers claim
    central_size: int | None = None  # overrides of one header's claims
    central_csize: int | None = None
    local_size: int | None = None
    local_csize: int | None = None


def deflate(content: bytes, level: int = 6) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    return packer.compress(content) + packer.flush()


def write_zip(entries: Sequence[Entry]) -> bytes:
    """A zip written field by field (duplicate names and lying sizes allowed), deflated, fixed time."""
    out, central = bytearray(), bytearray()
    for entry in entries:
        name = entry.name.encode("utf-8")
        stored = deflate(entry.content) if entry.stored is None else entry.stored
        crc = zlib.crc32(entry.content) if entry.crc is None else entry.crc
        size = len(entry.content) if entry.size is None else entry.size
        flags = 0x800 if not entry.name.isascii() else 0
        local_size = size if entry.local_size is None else entry.local_size
        local_csize = len(stored) if entry.local_csize is None else entry.local_csize
        central_size = size if entry.central_size is None else entry.central_size
        central_csize = len(stored) if entry.central_csize is None else entry.central_csize
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, DOS_TIME, DOS_DATE, crc, local_csize, local_size, len(name), 0
        )
        out += name + stored
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            (3 << 8) | 20,  # made by: Unix, zip 2.0 (what zipfile writes)
            20,
            flags,
            8,
            DOS_TIME,
            DOS_DATE,
            crc,
            central_csize,
            central_size,
            len(name),
            0,
            0,
            0,
            0,
            0o644 << 16,
            offset,
        )
        central += name
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    return bytes(out)


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@dataclass(frozen=True)
class Parsed:
    """A base bundle taken apart: its manifest and its other members in order."""

    manifest: dict[str, Any]
    members: tuple[tuple[str, bytes], ...]

    @property
    def family(self) -> str:
        return str(self.manifest["family"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def booster(self) -> str:
        return BOOSTER_MEMBERS[self.family]

    def member(self, name: str) -> bytes:
        return dict(self.members)[name]

    def width(self) -> int:
        return len(json.loads(self.member("featurizer.json"))["names"])


def parse(data: bytes) -> Parsed:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    manifest = json.loads(dict(entries)[MANIFEST])
    return Parsed(manifest, tuple((name, content) for name, content in entries if name != MANIFEST))


def sealed(manifest: dict[str, Any], members: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
    """The manifest with every member's size and sha256 recomputed (as `write_members` does)."""
    return {**manifest, "members": {name: {"bytes": len(data), "sha256": digest(data)} for name, data in members}}


def manifest_bytes(manifest: Any) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def bundle(manifest: Any, members: Sequence[tuple[str, bytes]], *, reseal: bool = True) -> bytes:
    """A bundle of these members: the manifest first, its member entries recomputed unless told."""
    head = sealed(manifest, members) if reseal else manifest
    return write_zip([Entry(MANIFEST, manifest_bytes(head)), *(Entry(name, data) for name, data in members)])


def replaced(parsed: Parsed, name: str, content: bytes) -> list[tuple[str, bytes]]:
    return [(n, content if n == name else c) for n, c in parsed.members]


# ---- JSON mutations -------------------------------------------------------------------------------------


class Raw(str):
    """A JSON literal written as it is (NaN, 1e400, a 5,000-digit number)."""


SPECIAL_NUMBERS: tuple[Any, ...] = (
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63,
    2**64,
    -(2**63),
    10**20,
    0.5,
    -0.0,
    1e308,
    -1e308,
    5e-324,
    Raw("1e400"),
    Raw("-1e400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("1" * 5000),  # past Python's 4,300-digit int parsing limit
    Raw("1" + "0" * 400),  # an integer that parses but overflows a float
)
SPECIAL_STRINGS = (
    "",
    "nan",
    "inf",
    "-1",
    "1e400",
    "99999999999999999999",
    "0x10",
    " ",
    "é",
    "\x00",
    "[]",
    "x" * 10000,
    "1_0",
    "+1",
    "\uff13\uff14",  # FULLWIDTH 34: Python's int() reads it
    " 1",
    "[1E400]",
    "[nan]",
)
TYPE_SWAPS: tuple[Any, ...] = (None, True, False, 0, 1.5, "", "x", [], {}, [0], {"x": 0}, "0", [[]], [None])


def dump_json(value: Any) -> bytes:
    """JSON text of `value`, `Raw` parts written verbatim."""
    literals: dict[str, str] = {}

    def marked(node: Any) -> Any:
        if isinstance(node, Raw):
            key = f"\x00raw{len(literals)}\x00"
            literals[key] = str(node)
            return key
        if isinstance(node, dict):
            return {k: marked(v) for k, v in node.items()}
        if isinstance(node, list):
            return [marked(v) for v in node]
        return node

    text = json.dumps(marked(value), separators=(",", ":"), allow_nan=True)
    for key, literal in literals.items():
        text = text.replace(json.dumps(key), literal)
    return text.encode("utf-8")


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (k, *_strings(v))]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def _walk(doc: Any, rng: random.Random, stop: float) -> list[Any]:
    """A random path into `doc`: at each container, stop there with probability `stop`."""
    path: list[Any] = []
    node = doc
    while isinstance(node, dict | list) and node and (not path or rng.random() > stop):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append(key)
        node = node[key]
    return path


def _at(doc: Any, path: Sequence[Any]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutate_json(
    doc: Any, rng: random.Random, *, stop: float = 0.3, roots: Sequence[Sequence[Any]] = ((),)
) -> tuple[Any, str]:
    """`doc` with 1-3 random edits (each somewhere under one of `roots`), and a description of them."""
    doc = copy.deepcopy(doc)
    notes = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        root = list(rng.choice(roots))
        try:
            path = root + _walk(_at(doc, root), rng, stop)
        except (KeyError, IndexError, TypeError):  # an earlier edit removed the root
            path = _walk(doc, rng, stop)
        target = _at(doc, path)
        parent: Any = _at(doc, path[:-1]) if path else None
        ops = ["retype"] + (["delete"] if path else [])
        if isinstance(target, int | float) and not isinstance(target, bool | Raw):
            ops += ["number"] * 4
        if isinstance(target, str) and not isinstance(target, Raw):
            ops += ["string"] * 2
        if isinstance(target, list):
            ops += ["grow", "grow", "shrink", "shrink", "reorder"]
        if isinstance(target, dict):
            ops += ["add_key", "rename_key", "drop_key"]
        op = rng.choice(ops)
        new: Any = target
        where = "/".join(map(str, path)) or "<root>"
        if op == "delete":
            del parent[path[-1]]
            notes.append(f"delete {where}")
            continue
        if op == "retype":
            new = copy.deepcopy(rng.choice(TYPE_SWAPS))
        elif op == "number":
            value = target
            options: list[Any] = [
                value + 1,
                value - 1,
                -value,
                value * 2,
                value * 1000,
                *rng.sample(SPECIAL_NUMBERS, 4),
            ]
            options.append(float(value) if isinstance(value, int) else int(value) if math.isfinite(value) else 0)
            new = rng.choice(options)
        elif op == "string":
            others = [s for s in _strings(doc) if s != target]
            options = [target + "x", target[:-1], target.upper(), " " + target, *SPECIAL_STRINGS]
            new = rng.choice([*options, *([rng.choice(others)] * 3 if others else [])])
        elif op == "grow":
            extra = copy.deepcopy(rng.choice(target)) if target and rng.random() < 0.7 else rng.choice(SPECIAL_NUMBERS)
            new = list(target)
            for _ in range(rng.choice((1, 1, 2, 50))):
                new.insert(rng.randrange(len(new) + 1), copy.deepcopy(extra))
        elif op == "shrink":
            new = list(target)
            if new:
                choice = rng.random()
                if choice < 0.6:
                    new.pop(rng.randrange(len(new)))
                elif choice < 0.8:
                    new = new[: len(new) // 2]
                else:
                    new = []
        elif op == "reorder":
            new = list(target)
            if len(new) > 1:
                i, j = rng.sample(range(len(new)), 2)
                new[i], new[j] = new[j], new[i]
            else:
                new.reverse()
        elif op == "add_key":
            new = dict(target)
            new[rng.choice(("extra", "x", "", *(k + "_" for k in target)))] = rng.choice((0, None, "x", []))
        elif op == "rename_key":
            new = dict(target)
            if new:
                key = rng.choice(list(new))
                new[rng.choice((key.upper(), key + " ", key[:-1], "_" + key))] = new.pop(key)
        elif op == "drop_key":
            new = dict(target)
            if new:
                new.pop(rng.choice(list(new)))
        if path:
            parent[path[-1]] = new
        else:
            doc = new
        notes.append(f"{op} {where}: {_short(target)} -> {_short(new)}")
    return doc, "; ".join(notes)


def _short(value: Any) -> str:
    text = str(value) if isinstance(value, Raw) else json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= 60 else f"{text[:40]}…({len(text)} chars)"


# ---- mutations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """A mutated file. `expect`: refuse (loading it is a wrong accept), same (it may load only as the
    same model: nothing the digests cover changed) or any (it may load as a changed, valid model)."""

    data: bytes
    detail: str
    expect: str


@dataclass(frozen=True)
class Case:
    index: int
    kind: str
    base: str
    seed: int


Mutator = Callable[[random.Random, Parsed, bytes, dict[str, Parsed]], Mutant]


def _kind_flip_bytes(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    out = bytearray(data)
    central = data.rfind(b"PK\x01\x02", 0, len(data))
    start_of_central = data.find(b"PK\x01\x02")
    spots = []
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        region = rng.random()
        if region < 0.6 or central < 0:
            position = rng.randrange(len(out))
        elif region < 0.85:  # the central directory and the end record
            position = rng.randrange(start_of_central, len(out))
        else:  # the first local header
            position = rng.randrange(0, 60)
        mask = 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
        out[position] ^= mask
        spots.append(f"{position}^{mask:#04x}")
    return Mutant(bytes(out), "flip " + ",".join(spots), "same")


def _kind_truncate_file(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    cut = rng.choice(
        (
            rng.randrange(len(data)),
            len(data) - 1,
            len(data) - rng.randint(1, 22),
            len(data) - rng.randint(23, 400),
            rng.randint(0, 64),
        )
    )
    return Mutant(data[: max(cut, 0)], f"cut at {max(cut, 0)} of {len(data)}", "same")


def _truncate_member(rng: random.Random, parsed: Parsed, *, reseal: bool) -> Mutant:
    names = [name for name, _ in parsed.members] + ([] if reseal else [MANIFEST])
    name = rng.choice(names)
    content = manifest_bytes(parsed.manifest) if name == MANIFEST else parsed.member(name)
    cut = rng.choice((rng.randrange(len(content)), len(content) - 1, 0, len(content) // 2))
    detail = f"{name} cut at {cut} of {len(content)}" + (", size and sha256 recomputed" if reseal else "")
    if name == MANIFEST:
        entries = [Entry(MANIFEST, content[:cut]), *(Entry(n, c) for n, c in parsed.members)]
        return Mutant(write_zip(entries), detail, "refuse")
    members = replaced(parsed, name, content[:cut])
    return Mutant(bundle(parsed.manifest, members, reseal=reseal), detail, "any" if reseal else "refuse")


def _kind_truncate_member_stale(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    return _truncate_member(rng, parsed, reseal=False)


def _kind_truncate_member_sealed(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    return _truncate_member(rng, parsed, reseal=True)


def _kind_flip_member(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    name = rng.choice([n for n, _ in parsed.members])
    content = bytearray(parsed.member(name))
    spots = []
    digits = [i for i, b in enumerate(content) if 48 <= b <= 57]
    for _ in range(rng.choice((1, 1, 2, 4))):
        if digits and rng.random() < 0.5:  # a digit to another digit: still well-formed text
            position = rng.choice(digits)
            content[position] = 48 + (content[position] - 48 + rng.randint(1, 9)) % 10
            spots.append(f"{position}=digit {chr(content[position])}")
        else:
            position = rng.randrange(len(content))
            mask = 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
            content[position] ^= mask
            spots.append(f"{position}^{mask:#04x}")
    members = replaced(parsed, name, bytes(content))
    return Mutant(bundle(parsed.manifest, members), f"{name} {','.join(spots)}, resealed", "any")


# -- trees: one view over the three formats (node arrays per tree), edited and written back

INT_LIMITS = (2**31 - 1, -(2**31), 2**40, -(2**40))


class Trees:
    """The trees of one booster member as editable node arrays: per tree `left`, `right` and `feature`
    (internal nodes only for LightGBM, every node for XGBoost and the forest, leaves -1 there)."""

    def __init__(self, parsed: Parsed) -> None:
        self.parsed, self.family = parsed, parsed.family
        self.content = parsed.member(parsed.booster)
        self.trees: list[dict[str, list[int]]] = []
        if self.family == "lightgbm":
            self.lines = self.content.decode().split("\n")
            self.blocks = [i for i, line in enumerate(self.lines) if line.startswith("Tree=")]
            for start in self.blocks:
                fields = self._lightgbm_fields(start)
                self.trees.append(
                    {
                        "left": _ints_of(fields.get("left_child", (0, ""))[1]),
                        "right": _ints_of(fields.get("right_child", (0, ""))[1]),
                        "feature": _ints_of(fields.get("split_feature", (0, ""))[1]),
                        "leaves": [int(fields["num_leaves"][1])],
                    }
                )
        elif self.family == "xgboost":
            self.model = json.loads(self.content)
            for tree in self.model["learner"]["gradient_booster"]["model"]["trees"]:
                self.trees.append(
                    {"left": tree["left_children"], "right": tree["right_children"], "feature": tree["split_indices"]}
                )
        else:
            line, _, rest = self.content.partition(b"\n")
            self.header, self.rest = json.loads(line), bytearray(rest)
            counts = [count for count, _ in self.header["trees"]]
            self.total, start = sum(counts), 0
            for count in counts:
                tree = {}
                for column, name in ((0, "left"), (1, "right"), (2, "feature")):
                    offset = column * self.total * 8 + start * 8
                    tree[name] = list(struct.unpack_from(f"<{count}q", self.rest, offset))
                tree["start"] = [start]
                self.trees.append(tree)
                start += count

    def _lightgbm_fields(self, start: int) -> dict[str, tuple[int, str]]:
        fields = {}
        for i in range(start + 1, len(self.lines)):
            line = self.lines[i]
            if line.startswith("Tree=") or line.startswith("end of trees"):
                break
            key, eq, value = line.partition("=")
            if eq:
                fields[key] = (i, value)
        return fields

    def splitting(self) -> list[int]:
        """Trees with at least one split."""
        return [k for k in range(len(self.trees)) if self.internal(k)]

    def internal(self, k: int) -> list[int]:
        tree = self.trees[k]
        if self.family == "lightgbm":
            return list(range(len(tree["left"])))
        return [i for i, child in enumerate(tree["left"]) if child != -1]

    def ancestors(self, k: int, node: int) -> list[int]:
        """`node` and every node above it."""
        tree = self.trees[k]
        parent: dict[int, int] = {}
        for side in ("left", "right"):
            for i, child in enumerate(tree[side]):
                if child >= 0:
                    parent.setdefault(child, i)
        chain, seen = [node], {node}
        while chain[-1] in parent and parent[chain[-1]] not in seen:
            chain.append(parent[chain[-1]])
            seen.add(chain[-1])
        return chain

    def set(self, k: int, array: str, node: int, value: int) -> None:
        self.trees[k][array][node] = value
        if self.family == "lightgbm":
            key = {"left": "left_child", "right": "right_child", "feature": "split_feature"}[array]
            line = self._lightgbm_fields(self.blocks[k])[key][0]
            self.lines[line] = f"{key}=" + " ".join(map(str, self.trees[k][array]))
        elif self.family == "random_forest":
            column = {"left": 0, "right": 1, "feature": 2}[array]
            struct.pack_into("<q", self.rest, column * self.total * 8 + (self.trees[k]["start"][0] + node) * 8, value)

    def write(self) -> bytes:
        if self.family == "lightgbm":
            return fix_tree_sizes("\n".join(self.lines)).encode()
        if self.family == "xgboost":
            return dump_json(self.model)
        return self.content.partition(b"\n")[0] + b"\n" + bytes(self.rest)

    def leaves(self, k: int) -> int:
        return self.trees[k]["leaves"][0] if self.family == "lightgbm" else len(self.trees[k]["left"])


def _ints_of(text: str) -> list[int]:
    return [int(v) for v in text.split()]


def fix_tree_sizes(text: str) -> str:
    """LightGBM model text with `tree_sizes` recomputed the way reprotab/model/boosters.py measures them."""
    body, sep, tail = text.partition("\nend of trees")
    starts = [m.start() for m in re.finditer(r"^Tree=", body, re.M)]
    if not starts or not sep:
        return text
    ends = [*starts[1:], len(body) + 1]
    sizes = " ".join(str(b - a) for a, b in zip(starts, ends, strict=True))
    header = re.sub(r"(?m)^tree_sizes=.*$", lambda _: f"tree_sizes={sizes}", body[: starts[0]], count=1)
    return header + body[starts[0] :] + sep + tail


def _kind_tree_index_range(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    if parsed.family == "catboost":  # symmetric trees: a split names its border by index, no child pointers
        model = json.loads(parsed.member("catboost.json"))
        k, split = _catboost_split(rng, model)
        bins = sum(len(feature["borders"]) for feature in model["features_info"]["float_features"])
        if rng.random() < 0.6:
            field, value = "split_index", rng.choice((bins, bins + rng.randint(1, 1000), -1, *INT_LIMITS))
        else:
            width = parsed.width()
            field, value = "float_feature_index", rng.choice((width, width + rng.randint(1, 100), -1, *INT_LIMITS))
        before, split[field] = split[field], value
        members = replaced(parsed, parsed.booster, dump_json(model))
        detail = f"tree {k} split {field} {before} -> {value}, resealed"
        return Mutant(bundle(parsed.manifest, members), detail, "refuse")
    trees = Trees(parsed)
    k = rng.choice(trees.splitting())
    node = rng.choice(trees.internal(k))
    width = parsed.width()
    array = rng.choice(("left", "right", "feature"))
    if array == "feature":
        value = rng.choice((width, width + rng.randint(1, 1000), -1, -rng.randint(2, 1000), *INT_LIMITS))
    elif trees.family == "lightgbm":  # internal children are 0..internal-1, leaves are ~leaf (-1..-leaves)
        internal, leaves = len(trees.trees[k]["left"]), trees.leaves(k)
        value = rng.choice((internal, internal + rng.randint(1, 100), -(leaves + 1), -(leaves + 50), *INT_LIMITS))
    else:
        count = len(trees.trees[k]["left"])
        value = rng.choice((count, count + rng.randint(1, 100), -2, -rng.randint(3, 100), *INT_LIMITS))
    before = trees.trees[k][array][node]
    trees.set(k, array, node, value)
    members = replaced(parsed, parsed.booster, trees.write())
    detail = f"tree {k} node {node} {array} {before} -> {value}, resealed"
    return Mutant(bundle(parsed.manifest, members), detail, "refuse")


def _kind_tree_cycle(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    trees = Trees(parsed)
    k = rng.choice(trees.splitting())
    internal = trees.internal(k)
    node = rng.choice(internal)
    side = rng.choice(("left", "right"))
    before = trees.trees[k][side][node]
    later = [j for j in internal if j > node and j != before]
    if later and rng.random() < 0.2:  # a later node that already has a parent: a DAG, no loop
        value, what, expect = rng.choice(later), "a later node (DAG)", "any"
    else:
        value, what, expect = rng.choice(trees.ancestors(k, node)), "itself or an ancestor", "refuse"
    trees.set(k, side, node, value)
    members = replaced(parsed, parsed.booster, trees.write())
    detail = f"tree {k} node {node} {side} {before} -> {value} ({what}), resealed"
    return Mutant(bundle(parsed.manifest, members), detail, expect)


def _json_member(rng: random.Random, parsed: Parsed, name: str) -> Mutant:
    doc, detail = mutate_json(json.loads(parsed.member(name)), rng)
    members = replaced(parsed, name, dump_json(doc))
    return Mutant(bundle(parsed.manifest, members), f"{name}: {detail}, resealed", "any")


def _kind_json_featurizer(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    return _json_member(rng, parsed, "featurizer.json")


def _kind_json_schema(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    return _json_member(rng, parsed, "schema.json")


def _kind_json_decision(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    return _json_member(rng, parsed, "decision.json")


def _kind_json_manifest(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    doc, detail = mutate_json(sealed(parsed.manifest, parsed.members), rng)
    entries = [Entry(MANIFEST, dump_json(doc)), *(Entry(n, c) for n, c in parsed.members)]
    return Mutant(write_zip(entries), f"manifest.json: {detail}", "same")


def _kind_json_booster(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    content = parsed.member(parsed.booster)
    if parsed.family == "xgboost":  # half the edits inside one tree's arrays, where the checks are
        model = json.loads(content)
        trees = len(model["learner"]["gradient_booster"]["model"]["trees"])
        tree = ["learner", "gradient_booster", "model", "trees", rng.randrange(trees)]
        doc, detail = mutate_json(model, rng, stop=0.15, roots=((), tree, tree, (*tree[:3], "tree_info")))
        new = dump_json(doc)
    elif parsed.family == "catboost":  # most edits in one tree, a float feature, the loss or the classes
        model = json.loads(content)
        tree = ("oblivious_trees", rng.randrange(len(model["oblivious_trees"])))
        feature = ("features_info", "float_features", rng.randrange(len(model["features_info"]["float_features"])))
        info = (
            "model_info",
            rng.choice(("params", "class_params") if "class_params" in model["model_info"] else ("params",)),
        )
        roots = ((), tree, tree, feature, ("model_info", "params", "loss_function"), info, ("scale_and_bias",))
        doc, detail = mutate_json(model, rng, stop=0.2, roots=roots)
        new = dump_json(doc)
    elif parsed.family == "linear":
        doc, detail = mutate_json(json.loads(content), rng, stop=0.3)
        new = dump_json(doc)
    else:  # the forest's header line
        line, _, rest = content.partition(b"\n")
        doc, detail = mutate_json(json.loads(line), rng, stop=0.25)
        new = dump_json(doc) + b"\n" + rest
    members = replaced(parsed, parsed.booster, new)
    return Mutant(bundle(parsed.manifest, members), f"{parsed.booster}: {detail}, resealed", "any")


SPECIAL_TOKENS = (
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-1",
    "0",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775808",
    "1e308",
    "-1e308",
    "-0",
    "0x10",
    "1.5",
    "abc",
    "",
    "1" * 400,
    "1_0",  # Python's int() and float() read these; LightGBM's parser does not, or reads another number
    "+1",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\uff15",  # FULLWIDTH DIGIT FIVE
    "1 ",  # two spaces between tokens
)
INSERTED_LINES = (
    "num_cat=1",
    "is_linear=1",
    "average_output",
    "[objective: multiclass]",
    "shrinkage=nan",
    "Tree=99",
    "end of trees",
    "tree",
    "leaf_value=nan",
    "num_leaves=0",
    "max_feature_idx=-1",
    "cat_boundaries=0 1",
    "cat_threshold=4294967295",
    "pandas_categorical:[[1,2]]",
    "pandas_categorical:{",
    "parameters:",
    "[linear_tree: 1]",
    "[num_class: 1000000]",
    "",
)


def _kind_lightgbm_text(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    lines = parsed.member("booster.txt").decode().split("\n")
    notes = []
    for _ in range(rng.choice((1, 1, 2))):
        keyed = [i for i, line in enumerate(lines) if "=" in line or line.startswith("[")]
        i = rng.choice(keyed) if keyed and rng.random() < 0.8 else rng.randrange(len(lines))
        line = lines[i]
        op = rng.choice(("token", "token", "token", "drop_token", "dup_token", "drop_line", "dup_line", "swap", "key"))
        op = "insert" if rng.random() < 0.15 else op
        key, eq, value = line.partition("=") if "=" in line else line.partition(": ")
        tokens = value.split(" ") if eq else line.split(" ")
        if op in ("token", "drop_token", "dup_token") and tokens:
            j = rng.randrange(len(tokens))
            if op == "token":
                old = tokens[j]
                number = re.fullmatch(r"-?\d+", old)
                shifts = [str(int(old) + rng.choice((-1, 1, 1000))), str(-int(old))] if number else []
                tokens[j] = rng.choice([*SPECIAL_TOKENS, *shifts])
            elif op == "drop_token":
                tokens.pop(j)
            else:
                tokens.insert(j, tokens[j])
            lines[i] = (key + eq + " ".join(tokens)) if eq else " ".join(tokens)
        elif op == "drop_line":
            lines.pop(i)
        elif op == "dup_line":
            lines.insert(i, line)
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "key" and eq:
            lines[i] = rng.choice((key.upper(), key + "x", "_" + key, "")) + eq + value
        elif op == "insert":
            lines.insert(i, rng.choice(INSERTED_LINES))
        notes.append(f"{op} at line {i} ({line[:40]!r} -> {lines[i][:40] if i < len(lines) else ''!r})")
    text = "\n".join(lines)
    fixed = rng.random() < 0.8
    if fixed:
        text = fix_tree_sizes(text)
    members = replaced(parsed, "booster.txt", text.encode())
    detail = "; ".join(notes) + (", tree_sizes recomputed" if fixed else "") + ", resealed"
    return Mutant(bundle(parsed.manifest, members), detail, "any")


FOREST_LAYOUT = (  # reprotab/model/boosters.py FOREST_COLUMNS: name, struct code, bytes
    ("left_child", "q", 8),
    ("right_child", "q", 8),
    ("feature", "q", 8),
    ("threshold", "d", 8),
    ("impurity", "d", 8),
    ("n_node_samples", "q", 8),
    ("weighted_n_node_samples", "d", 8),
    ("missing_go_to_left", "B", 1),
)


def _kind_forest_arrays(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    line, _, rest = parsed.member("forest.bin").partition(b"\n")
    header, out = json.loads(line), bytearray(rest)
    total = sum(count for count, _ in header["trees"])
    width = max(1, len(json.loads(parsed.member("schema.json"))["classes"]))
    columns, offset = {}, 0
    for name, code, size in FOREST_LAYOUT:
        columns[name], offset = (offset, code, size, total), offset + total * size
    columns["value"] = (offset, "d", 8, total * width)
    notes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choice(list(columns))
        start, code, size, count = columns[name]
        index = rng.randrange(count)
        if code == "q":
            value: Any = rng.choice((-1, -2, -3, 0, total, total + 7, 2**31, 2**62, -(2**63), rng.randrange(total)))
        elif code == "d":
            value = rng.choice((math.nan, math.inf, -math.inf, 1e308, -1e308, -0.0, 5e-324, 1e30, -1e30, 2.0, -1.0))
        else:
            value = rng.choice((0, 1, 2, 255))
        struct.pack_into(f"<{code}", out, start + index * size, value)
        notes.append(f"{name}[{index}] = {value}")
    members = replaced(parsed, "forest.bin", line + b"\n" + bytes(out))
    return Mutant(bundle(parsed.manifest, members), "; ".join(notes) + ", resealed", "any")


NON_FINITE = (Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400"))
CATBOOST_OPS = (
    "split_index",
    "split_feature",
    "split_border",
    "leaf_count",
    "weight_count",
    "leaf_value",
    "leaf_value",
    "weight_negative",
    "border",
    "depth",
    "loss",
    "classes",
    "bias",
    "features",
    "foreign_part",
    "duplicate_key",
)


def _catboost_split(rng: random.Random, model: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A random split of a random tree that has one."""
    trees = [k for k, tree in enumerate(model["oblivious_trees"]) if tree["splits"]]
    k = rng.choice(trees)
    return k, rng.choice(model["oblivious_trees"][k]["splits"])


def _kind_catboost_model(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    model = json.loads(parsed.member("catboost.json"))
    trees, features = model["oblivious_trees"], model["features_info"]["float_features"]
    k = rng.randrange(len(trees))
    tree = trees[k]
    op = rng.choice(CATBOOST_OPS)
    expect, detail = "refuse", ""
    if op == "split_index":  # in range, but another border than the split names
        bins = sum(len(feature["borders"]) for feature in features)
        k, split = _catboost_split(rng, model)
        value = rng.choice([i for i in range(bins) if i != split["split_index"]] or [bins])
        detail = f"tree {k} split_index {split['split_index']} -> {value}"
        split["split_index"] = value
    elif op == "split_feature":
        k, split = _catboost_split(rng, model)
        value = rng.choice([i for i in range(len(features)) if i != split["float_feature_index"]] or [-1])
        detail = f"tree {k} float_feature_index {split['float_feature_index']} -> {value}"
        split["float_feature_index"] = value
    elif op == "split_border":
        k, split = _catboost_split(rng, model)
        value = rng.choice((split["border"] + rng.choice((1e-3, -1e-3, 1.0)), *NON_FINITE, "0", None))
        detail = f"tree {k} border {split['border']} -> {value}"
        split["border"] = value
    elif op in ("leaf_count", "weight_count"):
        name = "leaf_values" if op == "leaf_count" else "leaf_weights"
        values = tree[name]
        change = rng.choice(("drop", "add", "double", "empty"))
        tree[name] = {"drop": values[:-1], "add": [*values, 0.0], "double": values * 2, "empty": []}[change]
        detail = f"tree {k} {name} {change} ({len(values)} -> {len(tree[name])})"
    elif op == "leaf_value":
        i = rng.randrange(len(tree["leaf_values"]))
        value = rng.choice((*NON_FINITE, 1e308, -1e308, 1e300, 5e-324, 1e6, "1", None, True))
        expect = "any" if isinstance(value, float) else "refuse"
        detail = f"tree {k} leaf_values[{i}] {tree['leaf_values'][i]} -> {value}"
        tree["leaf_values"][i] = value
    elif op == "weight_negative":
        i = rng.randrange(len(tree["leaf_weights"]))
        tree["leaf_weights"][i] = rng.choice((-1.0, -1e-300, Raw("NaN"), -1e308))
        detail = f"tree {k} leaf_weights[{i}] -> {tree['leaf_weights'][i]}"
    elif op == "border":
        i = rng.choice([j for j, feature in enumerate(features) if feature["borders"]])
        borders = features[i]["borders"]
        j = rng.randrange(len(borders))
        if len(borders) > 1 and rng.random() < 0.4:  # no longer increasing
            borders[j], borders[j - 1] = borders[j - 1], borders[j]
            detail = f"float feature {i} borders {j - 1} and {j} swapped"
        else:
            borders[j] = rng.choice((*NON_FINITE, 1e39, -1e39, 3.5e38))
            detail = f"float feature {i} borders[{j}] -> {borders[j]}"
    elif op == "depth":
        splits = tree["splits"] or [_catboost_split(rng, model)[1]]
        count = rng.choice((len(tree["splits"]) + 1, 17, 40))
        tree["splits"] = [copy.deepcopy(splits[i % len(splits)]) for i in range(count)]
        detail = f"tree {k} given {count} splits, leaves kept"
    elif op == "loss":
        loss = model["model_info"]["params"]["loss_function"]
        others = {"binary": ("RMSE", "MultiClass"), "multiclass": ("Logloss", "RMSE"), "regression": ("Logloss",)}
        value = rng.choice((*others[parsed.kind], "Poisson", "MultiClassOneVsAll", "RMSEWithUncertainty", "", "rmse"))
        detail = f"loss {loss['type']} -> {value}"
        loss["type"] = value
    elif op == "classes":
        if parsed.kind == "regression":
            model["model_info"]["class_params"] = {"class_names": [0, 1], "class_label_type": "Integer"}
            detail = "class_params added to a regressor"
        else:
            classes = model["model_info"]["class_params"]
            key = rng.choice(("class_names", "class_to_label"))
            classes[key] = rng.choice((classes[key][:-1], [*classes[key], len(classes[key])], classes[key][::-1]))
            detail = f"class_params {key} -> {classes[key]}"
    elif op == "bias":
        bias = model["scale_and_bias"][1]
        model["scale_and_bias"][1] = rng.choice((bias[:-1], [*bias, 0.0], []))
        detail = f"bias {bias} -> {model['scale_and_bias'][1]}"
    elif op == "features":
        if rng.random() < 0.5:
            features.pop(rng.randrange(len(features)))
            detail = "a float feature dropped"
        else:
            features.append({**copy.deepcopy(features[-1]), "feature_index": len(features)})
            features[-1]["flat_feature_index"] = len(features) - 1
            detail = "a float feature added"
    elif op == "foreign_part":
        part = rng.choice(("ctr_data", "trees", "categorical_features", "text_features"))
        if part in ("ctr_data", "trees"):
            model[part] = {} if part == "ctr_data" else copy.deepcopy(trees)
            if part == "trees" and rng.random() < 0.5:
                del model["oblivious_trees"]
        else:
            model["features_info"][part] = [{"feature_index": 0, "flat_feature_index": 0, "feature_id": ""}]
        detail = f"{part} added"
    else:  # a key twice: Python reads the second, another parser may read the first
        text = parsed.member("catboost.json").decode()
        key = rng.choice(('"leaf_values":', '"split_index":', '"borders":', '"type":'))
        at = rng.choice([m.start() for m in re.finditer(re.escape(key), text)])
        twin = {'"leaf_values":': "[0.5],", '"split_index":': "0,", '"borders":': "[],", '"type":': '"RMSE",'}[key]
        mutated = text[:at] + key + twin + text[at:]
        members = replaced(parsed, parsed.booster, mutated.encode())
        return Mutant(bundle(parsed.manifest, members), f"{key} given twice, resealed", "refuse")
    members = replaced(parsed, parsed.booster, dump_json(model))
    return Mutant(bundle(parsed.manifest, members), f"{op}: {detail}, resealed", expect)


def _kind_linear_arrays(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    model = json.loads(parsed.member("linear.json"))
    op = rng.choice(("value", "value", "scale", "shape", "shape", "kind", "type"))
    name = rng.choice(("mean", "scale", "coef", "intercept"))
    row = model["coef"][rng.randrange(len(model["coef"]))] if name == "coef" else model[name]
    i = rng.randrange(len(row))
    expect = "refuse"
    if op == "value":
        value = rng.choice((*NON_FINITE, 1e308, -1e308, 1e300, 1e30, 5e-324, -0.0))
        expect = "any" if isinstance(value, float) else "refuse"
        detail = f"{name}[{i}] {row[i]} -> {value}"
        row[i] = value
    elif op == "scale":
        i = rng.randrange(len(model["scale"]))
        value = rng.choice((0.0, -0.0, -1.0, -1e-300, 5e-324, 1e300))
        expect = "any" if value > 0 else "refuse"
        detail = f"scale[{i}] {model['scale'][i]} -> {value}"
        model["scale"][i] = value
    elif op == "shape":
        change = rng.choice(("drop", "add", "row_drop", "row_add", "flatten"))
        if change == "drop":
            row.pop(i)
        elif change == "add":
            row.insert(i, 0.0)
        elif change == "row_drop":
            model["coef"].pop()
        elif change == "row_add":
            model["coef"].append(list(model["coef"][0]))
        else:
            model["coef"] = model["coef"][0]
        detail = f"{change} ({name})"
    elif op == "kind":
        value = rng.choice([k for k in ("binary", "multiclass", "regression", "", None) if k != parsed.kind])
        detail = f"kind {model['kind']} -> {value}"
        model["kind"] = value
    else:
        value = rng.choice((1, 0, True, "1.0", None, [1.0], Raw("1" * 400)))
        detail = f"{name}[{i}] {row[i]} -> {value}"
        row[i] = value
    members = replaced(parsed, parsed.booster, dump_json(model))
    return Mutant(bundle(parsed.manifest, members), f"{op}: {detail}, resealed", expect)


def _kind_swap_member(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    variant = rng.choice(("same_name", "same_name", "foreign_as_own", "foreign_renamed", "foreign_family"))
    if variant == "same_name":
        other_name = rng.choice(sorted(n for n in bases if bases[n] is not parsed))
        other = bases[other_name]
        shared = [n for n, _ in parsed.members if n in dict(other.members)]
        name = rng.choice(shared)
        members = replaced(parsed, name, other.member(name))
        kinds_differ = other.kind != parsed.kind and name in (parsed.booster, "schema.json")
        detail = f"{name} from {other_name}, resealed"
        return Mutant(bundle(parsed.manifest, members), detail, "refuse" if kinds_differ else "any")
    foreign = sorted(n for n in bases if bases[n].family != parsed.family)
    other_name = rng.choice(foreign)
    other = bases[other_name]
    if variant == "foreign_as_own":  # the other family's booster under this family's member name
        members = replaced(parsed, parsed.booster, other.member(other.booster))
        detail = f"{other.booster} of {other_name} as {parsed.booster}, resealed"
        return Mutant(bundle(parsed.manifest, members), detail, "refuse")
    members = [(n, c) for n, c in parsed.members if n != parsed.booster] + [
        (other.booster, other.member(other.booster))
    ]
    if variant == "foreign_renamed":
        detail = f"{parsed.booster} replaced by {other.booster} of {other_name}, resealed"
        return Mutant(bundle(parsed.manifest, members), detail, "refuse")
    manifest = {**parsed.manifest, "family": other.family}
    detail = f"{parsed.booster} replaced by {other.booster} of {other_name}, family renamed, resealed"
    return Mutant(bundle(manifest, members), detail, "any")


def _kind_manifest_missing_file(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    variant = rng.choice(("drop_member", "rename_in_manifest", "extra_in_manifest", "rename_in_zip", "only_manifest"))
    manifest = sealed(parsed.manifest, parsed.members)
    entries = list(parsed.members)
    name = rng.choice([n for n, _ in entries])
    if variant == "drop_member":
        entries = [(n, c) for n, c in entries if n != name]
    elif variant == "rename_in_manifest":
        manifest["members"][rng.choice(("booster.bin", name + ".bak", name.upper(), "x"))] = manifest["members"].pop(
            name
        )
    elif variant == "extra_in_manifest":
        manifest["members"]["missing.json"] = {"bytes": 2, "sha256": digest(b"{}")}
    elif variant == "rename_in_zip":
        new = rng.choice((name.upper(), name + " ", "./" + name, "dir/" + name, name[:-1]))
        entries = [(new if n == name else n, c) for n, c in entries]
    else:
        entries = []
    return Mutant(bundle(manifest, entries, reseal=False), f"{variant} ({name})", "refuse")


EXTRA_NAMES = (
    "extra.bin",
    "../evil.json",
    "/tmp/evil",
    "dir/",
    "schema.json/",
    "model.pkl",
    "manifest.json.bak",
    "Schema.json",
    "featurizer.json\\",
    "ünïcode.json",
    "",
)


def _kind_extra_member(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    name = rng.choice(EXTRA_NAMES)
    content = rng.choice(
        (
            b"",
            rng.randbytes(rng.randint(1, 200)),
            b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00N.",
            parsed.members[0][1],
        )
    )
    declared = rng.random() < 0.5
    members = [*parsed.members]
    manifest = sealed(parsed.manifest, members)
    if declared:
        manifest["members"][name] = {"bytes": len(content), "sha256": digest(content)}
    entries = [*members]
    entries.insert(rng.randrange(len(entries) + 1), (name, content))
    detail = f"{name!r} ({len(content)} bytes){', named in the manifest' if declared else ''}"
    return Mutant(bundle(manifest, entries, reseal=False), detail, "refuse")


def _kind_huge_size_manifest(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    name = rng.choice([n for n, _ in parsed.members])
    actual = len(parsed.member(name))
    size = rng.choice(
        (
            2**31,
            2**32 + actual,
            2**40,
            2**63,
            2**64,
            10**30,
            MAX_MEMBER_BYTES,
            MAX_MEMBER_BYTES + 1,
            -1,
            -(2**63),
            actual + 1,
            actual - 1,
            float(actual),
            1e300,
            True,
            str(actual),
            None,
        )
    )
    manifest = sealed(parsed.manifest, parsed.members)
    manifest["members"][name]["bytes"] = size
    return Mutant(bundle(manifest, parsed.members, reseal=False), f"{name} bytes {size!r} (is {actual})", "refuse")


def _kind_huge_size_header(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    manifest = sealed(parsed.manifest, parsed.members)
    names = [MANIFEST, *(n for n, _ in parsed.members)]
    name = rng.choice(names)
    contents = {MANIFEST: manifest_bytes(manifest), **dict(parsed.members)}
    actual = len(contents[name])
    stored = len(deflate(contents[name]))
    variant = rng.choice(("central_size", "central_size", "both_sizes", "central_csize", "local_sizes"))
    huge = (
        0xFFFFFFFF,
        0xFFFFFFFE,
        0x7FFFFFFF,
        MAX_MEMBER_BYTES,
        MAX_MEMBER_BYTES + 1,
        MAX_JSON_BYTES + 1,
        actual * 300,
        actual + 1,
        max(actual - 1, 0),
        0,
    )
    entry = Entry(name, contents[name])
    expect, detail = "refuse", ""
    if variant in ("central_size", "both_sizes"):
        size = rng.choice(huge)
        entry.central_size = size
        if variant == "both_sizes":
            entry.local_size = size
        if name != MANIFEST and rng.random() < 0.5:  # the manifest agrees with the header's lie
            manifest = {**manifest, "members": {**manifest["members"], name: {**manifest["members"][name]}}}
            manifest["members"][name]["bytes"] = size
            contents[MANIFEST] = manifest_bytes(manifest)
            detail = ", the manifest agrees"
        detail = f"{name} {variant.replace('_', ' ')} {size} (is {actual}){detail}"
        if size == actual:
            expect = "same"
    elif variant == "central_csize":  # a compressed size: smaller breaks the stream, larger is read past
        entry.central_csize = rng.choice((0, 1, max(stored - 1, 0), stored + 1, 0x7FFFFFFF, 0xFFFFFFFE, len(data)))
        detail, expect = f"{name} central compressed size {entry.central_csize} (is {stored})", "same"
    else:  # local header sizes: zipfile reads the central directory's
        entry.local_size, entry.local_csize = rng.choice(huge), rng.choice(huge)
        detail, expect = f"{name} local sizes {entry.local_size}/{entry.local_csize}", "same"
    entries = [entry if n == name else Entry(n, contents[n]) for n in names]
    return Mutant(write_zip(entries), detail, expect)


_PADDING: dict[tuple[int, int], tuple[bytes, int, Any]] = {}


def _padding(megabytes: int, byte: int) -> tuple[bytes, int, Any]:
    """`megabytes` MiB of `byte` as a deflate stream that does not end (full flush), its CRC-32 and
    a sha256 state, cached: a bomb is then cheap to build."""
    if (megabytes, byte) not in _PADDING:
        packer, chunk = zlib.compressobj(9, zlib.DEFLATED, -15), bytes([byte]) * (1 << 20)
        parts, crc, state = [], 0, hashlib.sha256()
        for _ in range(megabytes):
            parts.append(packer.compress(chunk))
            crc = zlib.crc32(chunk, crc)
            state.update(chunk)
        parts.append(packer.flush(zlib.Z_FULL_FLUSH))
        _PADDING[megabytes, byte] = (b"".join(parts), crc, state)
    return _PADDING[megabytes, byte]


def _kind_zip_bomb(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    json_names = [n for n, _ in parsed.members if n.endswith(".json")]
    name = rng.choice([MANIFEST, *json_names, *json_names, parsed.booster])
    lie = rng.random() < 0.25  # the central directory claims a large compressed size: no ratio shows
    megabytes = rng.choice((8, 24, 48, 48, 300) if lie else (4, 32, 128, 400))
    byte = rng.choice((0x20, 0x20, 0x00)) if megabytes <= 32 else 0x20  # spaces: still JSON before the document
    stream, crc, state = _padding(megabytes, byte)
    manifest = sealed(parsed.manifest, parsed.members)
    original = manifest_bytes(manifest) if name == MANIFEST else parsed.member(name)
    size = (megabytes << 20) + len(original)
    whole = state.copy()
    whole.update(original)
    if name != MANIFEST:
        manifest["members"][name] = {"bytes": size, "sha256": whole.hexdigest()}
    contents = {MANIFEST: manifest_bytes(manifest), **dict(parsed.members)}
    names = [MANIFEST, *(n for n, _ in parsed.members)]
    stored = stream + deflate(original)
    bomb = Entry(name, b"", stored=stored, crc=zlib.crc32(original, crc), size=size)
    if lie:
        bomb.central_csize = rng.choice((size // 2, size, 0x7FFFFFFF))
    entries = [bomb if n == name else Entry(n, contents[n]) for n in names]
    mutated = write_zip(entries)
    over = size > MAX_RATIO * max(len(stored), 1) + (1 << 20)  # the documented bound, on the true stored size
    detail = f"{name} padded with {megabytes} MiB of {byte:#04x} ({len(stored)} bytes stored, sha256 matching)"
    if lie:
        detail += f", central directory claims {bomb.central_csize} bytes compressed"
    return Mutant(mutated, detail, "refuse" if over else "any")


def _kind_duplicate_name(rng: random.Random, parsed: Parsed, data: bytes, bases: dict[str, Parsed]) -> Mutant:
    manifest = sealed(parsed.manifest, parsed.members)
    entries = [(MANIFEST, manifest_bytes(manifest)), *parsed.members]
    k = rng.randrange(len(entries))
    name, content = entries[k]
    variant = rng.choice(("same_bytes", "other_bytes", "first_is_other"))
    if variant == "same_bytes":
        twin = content
    elif name == MANIFEST:
        twin = manifest_bytes({**manifest, "kind": "regression" if parsed.kind != "regression" else "binary"})
    else:
        donors = [b for b in bases.values() if name in dict(b.members) and b.member(name) != content]
        twin = rng.choice(donors).member(name) if donors else content + b" "
    position = rng.randrange(len(entries) + 1)
    extra = (name, twin)
    if variant == "first_is_other":
        entries[k] = extra
        extra = (name, content)
    entries.insert(position, extra)
    mutated = write_zip([Entry(n, c) for n, c in entries])
    return Mutant(mutated, f"{name} twice ({variant}, the second at {position})", "refuse")


KINDS: dict[str, tuple[Mutator, tuple[str, ...]]] = {  # kind → mutator, families it applies to
    "flip_bytes": (_kind_flip_bytes, FAMILIES),
    "truncate_file": (_kind_truncate_file, FAMILIES),
    "truncate_member_stale": (_kind_truncate_member_stale, FAMILIES),
    "truncate_member_sealed": (_kind_truncate_member_sealed, FAMILIES),
    "flip_member": (_kind_flip_member, FAMILIES),
    "tree_index_range": (_kind_tree_index_range, TREE_FAMILIES),
    "tree_cycle": (_kind_tree_cycle, LINKED_TREE_FAMILIES),
    "json_featurizer": (_kind_json_featurizer, FAMILIES),
    "json_schema": (_kind_json_schema, FAMILIES),
    "json_decision": (_kind_json_decision, FAMILIES),
    "json_manifest": (_kind_json_manifest, FAMILIES),
    "json_booster": (_kind_json_booster, ("xgboost", "random_forest", "catboost", "linear")),
    "lightgbm_text": (_kind_lightgbm_text, ("lightgbm",)),
    "forest_arrays": (_kind_forest_arrays, ("random_forest",)),
    "catboost_model": (_kind_catboost_model, ("catboost",)),
    "linear_arrays": (_kind_linear_arrays, ("linear",)),
    "swap_member": (_kind_swap_member, FAMILIES),
    "manifest_missing_file": (_kind_manifest_missing_file, FAMILIES),
    "extra_member": (_kind_extra_member, FAMILIES),
    "huge_size_manifest": (_kind_huge_size_manifest, FAMILIES),
    "huge_size_header": (_kind_huge_size_header, FAMILIES),
    "zip_bomb": (_kind_zip_bomb, FAMILIES),
    "duplicate_name": (_kind_duplicate_name, FAMILIES),
}


def plan_case(index: int, seed: int, bases: dict[str, Parsed], kinds: Sequence[str]) -> Case:
    """Case `index`: its kind round-robin over `kinds`, its base and mutation seed from (seed, index)."""
    rng = random.Random(f"{seed}/{index}")
    kind = kinds[index % len(kinds)]
    families = KINDS[kind][1]
    base = rng.choice(sorted(name for name, p in bases.items() if p.family in families))
    return Case(index, kind, base, rng.getrandbits(64))


def mutate(case: Case, bundles: dict[str, bytes], parsed: dict[str, Parsed]) -> Mutant:
    mutator = KINDS[case.kind][0]
    return mutator(random.Random(case.seed), parsed[case.base], bundles[case.base], parsed)


# ---- the worker -------------------------------------------------------------------------------------------------


class Wrong(Exception):
    """A loaded model that fails a check (it should have been refused)."""


def _demo_rows() -> Any:
    from reprotab.data.demo import generate

    rows = generate(rows=24, seed=11)
    categorical = ["contract", "payment_method", "internet_service", "region"]
    numeric = ["tenure_months", "monthly_charges", "avg_session_minutes", "satisfaction_score", "age"]
    rows.loc[0, categorical] = None  # missing everything
    rows.loc[0, numeric] = float("nan")
    rows.loc[1, categorical] = "never-seen"
    rows.loc[2, "total_charges"] = "n/a"
    return rows


def _check_output(model: Any, out: Any, n: int, where: str) -> Any:
    import numpy as np

    out = np.asarray(out)
    if model.schema.task == "regression":
        if out.shape != (n,):
            raise Wrong(f"{where}: shape {out.shape}, expected ({n},)")
    elif out.shape != (n, len(model.schema.classes)):
        raise Wrong(f"{where}: shape {out.shape}, expected ({n}, {len(model.schema.classes)})")
    if not np.all(np.isfinite(out.astype(float))):
        raise Wrong(f"{where}: non-finite predictions {out.reshape(-1)[:4].tolist()}")
    if model.schema.task == "classification":
        if out.min() < -1e-9 or out.max() > 1 + 1e-9:
            raise Wrong(f"{where}: probabilities outside [0, 1] ({out.min():.4g} .. {out.max():.4g})")
        if np.abs(out.sum(axis=1) - 1).max() > 1e-6:
            raise Wrong(f"{where}: probabilities summing to {out.sum(axis=1)[:3].tolist()}")
    return out


def score(model: Any, rows: Any) -> tuple[Any, Any]:
    """Predictions of a loaded model on `rows` (probabilities and labels, or values; None when the
    model's features are not among the rows' columns), after a matrix of random and extreme
    featurized values; `Wrong` when any is out of shape, non-finite or not probabilities."""
    import numpy as np

    from reprotab.errors import UserError

    matrix = np.random.default_rng(0).normal(0, 50, size=(8, model.plan.width)).astype(np.float32)
    matrix[0], matrix[1], matrix[2] = 0, 1e6, -1e6
    _check_output(model, model.predict_featurized(matrix), len(matrix), "random featurized rows")
    if not set(model.schema.features) <= set(map(str, rows.columns)):
        return None, None
    try:
        if model.schema.task == "regression":
            return _check_output(model, model.predict(rows), len(rows), "demo rows"), None
        proba = _check_output(model, model.predict_proba(rows), len(rows), "demo rows")
        labels = model.predict(rows)
        if not set(labels.tolist()) <= set(model.schema.classes):
            raise Wrong("labels outside the schema's classes")
        return proba, labels
    except UserError:  # rows the model refuses (a column now read as another type): not the loader's fault
        return None, None


def _hwm_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB."""
    status = Path("/proc/self/status").read_text()
    rss = re.search(r"VmRSS:\s+(\d+)", status)
    hwm = re.search(r"VmHWM:\s+(\d+)", status)
    return (int(rss.group(1)) if rss else 0), (int(hwm.group(1)) if hwm else 0)


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS to the current RSS
        return True
    except OSError:
        return False


def run_case(
    case: Case, bundles: dict[str, bytes], parsed: dict[str, Parsed], reference: dict[Any, Any], memory_mb: int
) -> dict[str, Any]:
    """One case in this process: its outcome, a message, whether a loaded model kept its predictions."""
    import numpy as np

    from reprotab.errors import UserError
    from reprotab.model import served

    try:
        mutant = mutate(case, bundles, parsed)
    except Exception as exc:  # the fuzzer's own bug: reported as a crash of the mutation, never hidden
        return {"outcome": "crash", "message": f"mutation failed: {type(exc).__name__}: {exc}", "mutation": ""}
    result: dict[str, Any] = {"mutation": mutant.detail, "expect": mutant.expect, "same": None}
    measured = _reset_hwm()
    before, _ = _hwm_kib()
    try:
        model = served.loads(mutant.data)
    except UserError as exc:
        result.update(outcome="refused", message=str(exc)[:300])
    except MemoryError:
        result.update(outcome="memory", message="MemoryError")
    except BaseException as exc:
        result.update(outcome="crash", message=f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:600])
    else:
        result.update(outcome="loaded", message="")
        try:
            proba, labels = score(model, reference["rows"])
            base_proba, base_labels = reference[case.base]
            same = (
                proba is not None
                and np.array_equal(proba, base_proba)
                and (labels is None or np.array_equal(labels, base_labels))
                and model.threshold == reference["threshold", case.base]
            )
            result["same"] = bool(same)
            if mutant.expect == "refuse":
                raise Wrong("a mutation that must be refused loaded")
            if mutant.expect == "same" and not same:
                raise Wrong("a mutation outside the digests' reach changed the model's predictions")
        except Wrong as exc:
            result.update(outcome="wrong_accept", message=str(exc)[:300])
        except MemoryError:
            result.update(outcome="memory", message="MemoryError while predicting")
        except BaseException as exc:
            result.update(outcome="wrong_accept", message=f"predicting: {type(exc).__name__}: {exc}"[:300])
    if measured:
        _, peak = _hwm_kib()
        grown = (peak - before) // 1024
        result["peak_mb"] = grown
        if grown > memory_mb and result["outcome"] != "crash":
            result.update(
                outcome="memory",
                message=f"peak memory +{grown} MiB for a {len(mutant.data)}-byte file ({result['outcome']}: "
                f"{result['message'][:120]})",
            )
    return result


def worker_main(directory: str, memory_mb: int, *, fork: bool) -> int:
    """A worker: JSON lines of cases on stdin, one JSON line of result each on the original stdout
    (library output goes to stderr). With `fork`, this process imports and warms up once, then
    serves from a forked child, forking a fresh one whenever a child dies (`{"died": status}`)."""
    import faulthandler

    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    faulthandler.enable()
    from reprotab.model import served

    bundles = {path.stem: path.read_bytes() for path in sorted(Path(directory).glob("*.zip"))}
    parsed = {name: parse(data) for name, data in bundles.items()}
    rows = _demo_rows()
    reference: dict[Any, Any] = {"rows": rows}
    for name, data in bundles.items():
        model = served.loads(data)
        reference[name] = score(model, rows)
        reference["threshold", name] = model.threshold
    try:  # a hard ceiling besides the measured one: address space now plus 4 GiB
        import resource

        found = re.search(r"VmSize:\s+(\d+)", Path("/proc/self/status").read_text())
        if found:
            ceiling = int(found.group(1)) * 1024 + (4 << 30)
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, resource.RLIM_INFINITY))
    except (ImportError, ValueError, OSError):
        pass

    def serve() -> None:
        protocol.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
        for line in sys.stdin:
            case = Case(**json.loads(line))
            result = run_case(case, bundles, parsed, reference, memory_mb)
            protocol.write(json.dumps({"index": case.index, **result}) + "\n")

    if not fork:
        serve()
        return 0
    while True:
        child = os.fork()
        if child == 0:
            status = 3
            try:
                serve()
                status = 0  # the input ended
            finally:
                protocol.flush()
                os._exit(status)
        _, status = os.waitpid(child, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return 0
        died = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        protocol.write(json.dumps({"died": died}) + "\n")


# ---- the pool -----------------------------------------------------------------------------------------------


@dataclass
class Failure:
    index: int
    kind: str
    base: str
    outcome: str
    message: str
    mutation: str


@dataclass
class Loaded:
    """A mutated file that loaded: acceptable when the model it gives is valid (see the module docstring)."""

    index: int
    kind: str
    base: str
    same: bool
    mutation: str


@dataclass
class Report:
    seed: int
    cases: int = 0
    seconds: float = 0.0
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    loaded: list[Loaded] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def outcomes(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.by_kind.values():
            total.update(counts)
        return total

    @property
    def failed(self) -> bool:
        return any(self.outcomes[o] for o in FAILURES)

    def add(self, case: Case, result: dict[str, Any]) -> None:
        counts = self.by_kind.setdefault(case.kind, Counter())
        outcome = result["outcome"]
        counts["tried"] += 1
        counts[outcome] += 1
        if outcome == "loaded":
            counts["loaded_same" if result.get("same") else "loaded_changed"] += 1
            self.loaded.append(Loaded(case.index, case.kind, case.base, bool(result.get("same")), result["mutation"]))
        if outcome in FAILURES:
            self.failures.append(
                Failure(
                    case.index, case.kind, case.base, outcome, result.get("message", ""), result.get("mutation", "")
                )
            )
        self.cases += 1

    def table(self) -> str:
        columns = ("tried", "refused", "loaded_same", "loaded_changed", "crash", "hang", "memory", "wrong_accept")
        width = max([len(k) for k in self.by_kind] + [5])
        lines = [f"{'kind':<{width}}  " + "  ".join(f"{c:>14}" for c in columns)]
        for kind in [k for k in KINDS if k in self.by_kind]:
            counts = self.by_kind[kind]
            lines.append(f"{kind:<{width}}  " + "  ".join(f"{counts[c]:>14}" for c in columns))
        total = Counter[str]()
        for counts in self.by_kind.values():
            total.update(counts)
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{total[c]:>14}" for c in columns))
        rate = self.cases / self.seconds if self.seconds else 0.0
        lines.append(f"{self.cases} cases in {self.seconds:.0f} s ({rate:.0f}/s), seed {self.seed}")
        if self.stopped_early:
            lines.append("stopped early: --max-minutes reached")
        return "\n".join(lines)


class Worker:
    """A worker subprocess with a JSON-lines protocol. With `fork`, a case that kills or hangs the
    serving child costs a fresh fork of the warmed-up worker; without, a fresh worker process."""

    def __init__(self, directory: str, memory_mb: int, log: IO[bytes], *, fork: bool) -> None:
        self.directory, self.memory_mb, self.log, self.fork = directory, memory_mb, log, fork
        self.process: subprocess.Popen[bytes] | None = None
        self.buffer = b""
        self.case: Case | None = None
        self.child = 0  # the process serving cases (a fork of `process`, or `process` itself)
        self.deadline = 0.0
        self.start()

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "OMP_NUM_THREADS": "1",  # no OpenMP thread pool: forking the warmed-up worker is safe
        }
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", self.directory]
        command += ["--memory-mb", str(self.memory_mb)] + ([] if self.fork else ["--no-fork"])
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=str(ROOT)
        )
        self.buffer, self.case = b"", None
        self.await_ready(300)

    def await_ready(self, timeout: float) -> None:
        """Wait for the serving process's `ready` line (other lines, e.g. a killed case's, are dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(deadline)
            if line is None:
                status = self.process.poll() if self.process is not None else None
                raise RuntimeError(f"a fuzz worker did not start ({_signal_name(status)}); see its log")
            message = json.loads(line)
            if message.get("ready"):
                self.child, self.case = int(message["pid"]), None
                return

    @property
    def fd(self) -> int:
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout.fileno()

    def read_line(self, deadline: float) -> bytes | None:
        """The next line, or None on EOF or past the deadline."""
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def send(self, case: Case, timeout: float) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.case, self.deadline = case, time.monotonic() + timeout
        payload = {"index": case.index, "kind": case.kind, "base": case.base, "seed": case.seed}
        self.process.stdin.write(json.dumps(payload).encode() + b"\n")
        self.process.stdin.flush()

    def restart(self) -> None:
        """A fresh worker after its case overran, or after the worker process itself died."""
        if self.fork and self.process is not None and self.process.poll() is None:
            try:
                os.kill(self.child, 9)  # the forked child we were told of; the worker forks another
                self.await_ready(60)
                return
            except (ProcessLookupError, RuntimeError):
                pass
        self.stop(kill=True)
        self.start()

    def stop(self, *, kill: bool) -> int | None:
        """End the worker (killed, or asked to by closing its input) and return its exit status."""
        assert self.process is not None
        if kill:
            self.process.kill()
        elif self.process.stdin is not None:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _signal_name(status: int | None) -> str:
    import signal

    if status is not None and status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _tail(path: Path, limit: int = 700) -> str:
    """The worker log's last fatal error and stack (faulthandler's), else its last lines."""
    try:
        text = path.read_bytes()[-(64 << 10) :].decode("utf-8", "replace")
    except OSError:
        return ""
    fatal = text.rfind("Fatal Python error")
    if fatal >= 0:
        text = text[fatal:]
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Extension modules")]
    return " | ".join(lines)[:limit]


def fuzz(
    bundles: dict[str, bytes],
    cases: int,
    seed: int,
    *,
    workers: int | None = None,
    timeout: float = 10.0,
    memory_mb: int = 256,
    kinds: Sequence[str] | None = None,
    start: int = 0,
    max_seconds: float | None = None,
    progress: Callable[[Report], None] | None = None,
    fork: bool = True,
) -> Report:
    """Cases start .. start + cases - 1 of `seed` against `bundles` (name → model bundle bytes)."""
    kinds = list(kinds or KINDS)
    parsed = {name: parse(data) for name, data in bundles.items()}
    for name, base in parsed.items():  # the fuzzer's zip writer must still write what the loader reads
        if bundle(base.manifest, base.members) != bundles[name]:
            raise RuntimeError(f"{name}: rebuilt unchanged, the bundle differs; bench/fuzz_bundles.py is out of date")
    report = Report(seed=seed)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-bundles-") as scratch:
        directory = Path(scratch) / "bases"
        directory.mkdir()
        for name, data in bundles.items():
            (directory / f"{name}.zip").write_bytes(data)
        pending: Iterator[int] = iter(range(start, start + cases))
        count = max(1, min(workers or os.cpu_count() or 1, cases))
        logs = [Path(scratch) / f"worker-{k}.log" for k in range(count)]
        handles = [path.open("wb") for path in logs]
        pool = [Worker(str(directory), memory_mb, handles[k], fork=fork) for k in range(count)]
        last_progress = time.monotonic()
        try:
            while True:
                for worker in pool:
                    if worker.case is None and not report.stopped_early:
                        if max_seconds is not None and time.monotonic() - began > max_seconds:
                            report.stopped_early = True
                            break
                        index = next(pending, None)
                        if index is not None:
                            worker.send(plan_case(index, seed, parsed, kinds), timeout)
                busy = [w for w in pool if w.case is not None]
                if not busy:
                    break
                wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                ready = select.select([w.fd for w in busy], [], [], wait)[0]
                for k, worker in enumerate(pool):
                    case = worker.case
                    if case is None:
                        continue
                    if worker.fd in ready:
                        chunk = os.read(worker.fd, 1 << 16)
                        if not chunk:  # the worker process itself died with the case
                            status = worker.stop(kill=True)
                            handles[k].flush()
                            message = f"worker {_signal_name(status)}; log: {_tail(logs[k])}"
                            report.add(case, _lost(case, bundles, parsed, "crash", message))
                            worker.start()
                            continue
                        worker.buffer += chunk
                    if b"\n" in worker.buffer:
                        line, _, worker.buffer = worker.buffer.partition(b"\n")
                        result = json.loads(line)
                        if "died" in result:  # the forked child serving the case died
                            handles[k].flush()
                            message = f"worker {_signal_name(result['died'])}; log: {_tail(logs[k])}"
                            report.add(case, _lost(case, bundles, parsed, "crash", message))
                            worker.await_ready(60)
                            continue
                        worker.case = None
                        report.add(case, result)
                    elif time.monotonic() >= worker.deadline:
                        report.add(case, _lost(case, bundles, parsed, "hang", f"no result within {timeout:g} s"))
                        worker.restart()
                if progress is not None and time.monotonic() - last_progress > 30:
                    report.seconds = time.monotonic() - began
                    progress(report)
                    last_progress = time.monotonic()
        finally:
            for worker in pool:
                if worker.process is not None and worker.process.poll() is None:
                    worker.stop(kill=worker.case is not None)
            for handle in handles:
                handle.close()
    report.seconds = time.monotonic() - began
    report.failures.sort(key=lambda f: f.index)
    report.loaded.sort(key=lambda f: f.index)
    return report


def _lost(
    case: Case, bundles: dict[str, bytes], parsed: dict[str, Parsed], outcome: str, message: str
) -> dict[str, Any]:
    """The result of a case whose worker gave none; its mutation is regenerated (cases are deterministic)."""
    try:
        mutation = mutate(case, bundles, parsed).detail
    except Exception as exc:
        mutation = f"(could not regenerate: {exc})"
    return {"outcome": outcome, "message": message, "mutation": mutation}


# ---- the command line ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    parser.add_argument("--memory-mb", type=int, default=256, help="peak memory growth per case counted as a failure")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop starting cases after this long")
    parser.add_argument("--bases", type=Path, default=None, help="keep (or reuse) the trained base models here")
    parser.add_argument("--kinds", default=None, help="comma-separated mutation kinds (default: all)")
    parser.add_argument("--case", type=int, default=None, help="run only this case (a failure's replay)")
    parser.add_argument("--save", type=Path, default=None, help="with --case: write the mutated file here")
    parser.add_argument("--out", type=Path, default=None, help="write the report (failures, loaded cases) as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-fork", action="store_true", help="a fresh worker process per crash, not a fork")
    args = parser.parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker, args.memory_mb, fork=not args.no_fork)
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    t0 = time.monotonic()
    bundles = load_or_train_bases(args.bases)
    print(f"{len(bundles)} base models ready in {time.monotonic() - t0:.1f} s: {', '.join(bundles)}", flush=True)
    if args.case is not None:
        parsed = {name: parse(data) for name, data in bundles.items()}
        case = plan_case(args.case, args.seed, parsed, kinds)
        mutant = mutate(case, bundles, parsed)
        print(f"case {case.index}: {case.kind} on {case.base}: {mutant.detail} (expect {mutant.expect})")
        if args.save is not None:
            args.save.write_bytes(mutant.data)
            print(f"wrote {len(mutant.data)} bytes to {args.save}")
        report = fuzz(
            bundles,
            1,
            args.seed,
            workers=1,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            kinds=kinds,
            start=args.case,
            fork=False,  # a replay runs in a fresh process
        )
    else:

        def progress(report: Report) -> None:
            rate = report.cases / report.seconds if report.seconds else 0
            failed = sum(report.outcomes[o] for o in FAILURES)
            print(f"  {report.cases}/{args.cases} cases, {rate:.0f}/s, {failed} failures", file=sys.stderr, flush=True)

        max_seconds = None if args.max_minutes is None else args.max_minutes * 60
        report = fuzz(
            bundles,
            args.cases,
            args.seed,
            workers=args.workers,
            timeout=args.timeout,
            memory_mb=args.memory_mb,
            kinds=kinds,
            max_seconds=max_seconds,
            progress=progress,
            fork=not args.no_fork,
        )
    print(report.table())
    if args.out is not None:
        summary = {
            "seed": report.seed,
            "cases": report.cases,
            "seconds": round(report.seconds, 1),
            "stopped_early": report.stopped_early,
            "by_kind": {kind: dict(counts) for kind, counts in report.by_kind.items()},
            "failures": [vars(f) for f in report.failures],
            "loaded": [vars(f) for f in report.loaded],
        }
        args.out.write_text(json.dumps(summary, indent=1))
    changed = [case for case in report.loaded if not case.same]
    if changed:
        print(f"\nloaded as a changed (valid, checked) model: {len(changed)} cases, e.g.")
        for loaded in changed[:: max(1, len(changed) // 8)][:8]:
            print(f"  case {loaded.index} ({loaded.kind} on {loaded.base}): {loaded.mutation[:150]}")
    for failure in report.failures[:40]:
        print(
            f"\n{failure.outcome}: case {failure.index} ({failure.kind} on {failure.base}): {failure.mutation}\n"
            f"  {failure.message}\n"
            f"  replay: .venv/bin/python bench/fuzz_bundles.py --seed {args.seed} --case {failure.index}"
            " --save case.zip"
            + (f" --kinds {args.kinds}" if args.kinds else "")
            + (f" --bases {args.bases}" if args.bases else "")
        )
    if len(report.failures) > 40:
        print(f"\n… and {len(report.failures) - 40} more failures")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
