"""mkdocs hook: reference tables rendered from the code at build time, so the pages cannot drift.

- `<!-- params-reference -->` (docs/params.md) becomes one table per params section, walked from
  the typed models (reprotab/params/loader.py's `Params` and reprotab/params/sections.py): every
  field with its type and rules, the default when the key is left out, the value params.yaml ships,
  and a description. The description is the field's pydantic `description`, else the comment beside
  or above the field in the source, else the key's comment in params.yaml; a field with none still
  gets its row.
- `<!-- commands-reference -->` (docs/commands.md) becomes the table of `reprotab` commands from
  reprotab/cli.py's `COMMANDS`.

mkdocs.yml lists this file under `hooks:` (and keeps it out of the site with `exclude_docs`);
tests/unit/test_docs.py runs the renderers directly.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
PARAMS_MARKER = "<!-- params-reference -->"
COMMANDS_MARKER = "<!-- commands-reference -->"
# what a dict's keys are, by the field holding the dict (the placeholder in a section's path)
KEY_NAMES = {"grid": "model", "space": "model", "hyperparameters": "model"}
SHARED_NOTE = "not a key in params.yaml: the entries written directly under the model, which apply to every task"
LONG = 60  # a shipped value longer than this is not repeated in the table


@dataclass
class Row:
    name: str
    type: str
    default: str
    shipped: str
    description: str


@dataclass
class Table:
    path: str  # where the section sits in params.yaml, e.g. `data.batches` or `tune.space.<model>`
    cls: type[BaseModel]
    doc: str
    rows: list[Row] = field(default_factory=list)
    also: list[str] = field(default_factory=list)  # other places the same section appears


def _models() -> tuple[type[BaseModel], type[BaseModel], Any]:
    from reprotab.params import sections
    from reprotab.params.loader import Params

    return Params, sections.Section, sections


# ----------------------------------------------------------------------------- descriptions


@cache
def _source_comments(path: str) -> dict[tuple[str, str], str]:
    """(class name, field name) → the comment beside the field (on any of its lines) or the comment
    lines right above it, from the module's source."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above: list[str] = []
            line = stmt.lineno - 1
            while line >= 1 and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments.get(line, ""))
                line -= 1
            beside = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments]
            parts = [c for c in above + beside if c and not re.match(r"(noqa|type:)", c)]
            if parts:
                found[(node.name, stmt.target.id)] = " ".join(parts)
    return found


@cache
def _params_yaml() -> tuple[dict[str, str], dict[str, Any]]:
    """(dotted key → its comment in params.yaml, the parsed file). Never raises: a file that cannot
    be read gives no comments and no shipped values."""
    try:
        text = (ROOT / "params.yaml").read_text(encoding="utf-8")
        shipped = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError):
        return {}, {}
    notes: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: str | None = None
    for raw in text.splitlines():
        key = re.match(r"^(\s*)([A-Za-z_]\w*):(.*)$", raw)
        if key:
            indent, name, rest = len(key[1]), key[2], key[3]
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, name))
            last = ".".join(n for _, n in stack)
            comment = re.search(r"\s#\s?(.*)$", rest)
            if comment:
                notes[last] = comment[1].strip()
        elif raw.strip().startswith("#") and last in notes and raw.startswith(" "):
            notes[last] += " " + raw.strip().lstrip("#").strip()  # a comment continued on the next line
        else:
            last = None
    return notes, shipped


def _description(cls: type[BaseModel], name: str, path: str) -> str:
    info = cls.model_fields[name]
    if info.description:
        return info.description
    source = _source_comments(inspect.getsourcefile(cls) or "")
    if (cls.__name__, name) in source:
        return source[(cls.__name__, name)]
    if name == _models()[2].SHARED:
        return SHARED_NOTE
    return _params_yaml()[0].get(path, "")


# ----------------------------------------------------------------------------- values and types


def _value(value: Any) -> str:
    """A value as it would be written in params.yaml."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _type(annotation: Any) -> str:
    scalar = _models()[2].Scalar
    if annotation == scalar:
        return "scalar"
    if annotation is type(None):
        return "null"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(_value(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is tuple:
        return f"list of {_type(args[0])}" if len(args) == 2 and args[1] is Ellipsis else "list"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _rules(metadata: list[Any]) -> str:
    signs = {
        annotated_types.Ge: ("≥", "ge"),
        annotated_types.Gt: (">", "gt"),
        annotated_types.Le: ("≤", "le"),
        annotated_types.Lt: ("<", "lt"),
    }
    found = []
    for item in metadata:
        for kind, (sign, bound) in signs.items():
            if isinstance(item, kind):
                found.append(f"{sign} {_value(getattr(item, bound))}")
    return ", ".join(found)


def _choices(cls: type[BaseModel], name: str) -> str:
    """The names a top-level strategy key accepts, from the registries that implement them."""
    params, _, sections = _models()
    if cls is not params:
        return ""
    kinds = {"model": "model choices", "sampler": "samplers", "tuner": "tuners"}
    if name in kinds:
        return "one of " + ", ".join(sections.registry(kinds[name]))
    if name == "metric":
        return "; ".join(f"{task}: {', '.join(names)}" for task, names in sections.registry("metrics").items())
    if name == "hyperparameters":
        return "keys: " + ", ".join(sections.registry("models"))
    return ""


def _shipped(path: str) -> str:
    node: Any = _params_yaml()[1]
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return ""
        node = node[part]
    if isinstance(node, dict) and any(isinstance(v, dict) for v in node.values()):
        return "(see params.yaml)"
    text = _value(node)
    return text if len(text) <= LONG else "(see params.yaml)"


def _sections_in(annotation: Any) -> list[tuple[type[BaseModel], bool]]:
    """The sections an annotation holds: (class, True when they are the values of a dict)."""
    section = _models()[1]
    if isinstance(annotation, type) and issubclass(annotation, section):
        return [(annotation, False)]
    found = []
    if typing.get_origin(annotation) is dict:
        found += [(cls, True) for cls, _ in _sections_in(typing.get_args(annotation)[1])]
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found += _sections_in(arg)
    return found


# ----------------------------------------------------------------------------- the tables


def params_tables() -> list[Table]:
    """One table per params section, in params.yaml's order, each section once (with the other
    places it appears)."""
    params = _models()[0]
    tables: dict[type[BaseModel], Table] = {}
    todo: list[tuple[type[BaseModel], str]] = [(params, "")]
    while todo:
        cls, path = todo.pop(0)
        if cls in tables:
            tables[cls].also.append(path)
            continue
        doc = inspect.cleandoc(cls.__doc__) if cls.__doc__ else _params_yaml()[0].get(path, "")
        table = tables[cls] = Table(path, cls, " ".join(doc.split()))
        children = []
        for name, info in cls.model_fields.items():
            where = f"{path}.{name}" if path else name
            kind = _type(info.annotation)
            extra = [text for text in (_rules(info.metadata), _choices(cls, name)) if text]
            default = "required" if info.is_required() else _value(info.default)
            if isinstance(info.default, BaseModel):
                default = "(section)"
            description = _description(cls, name, where)
            table.rows.append(Row(name, ", ".join([kind, *extra]), default, _shipped(where), description))
            for child, in_dict in _sections_in(info.annotation):
                if name == _models()[2].SHARED:
                    children.append((child, f"{path}.<{KEY_NAMES.get(name, 'hyperparameter')}>"))
                elif in_dict:
                    children.append((child, f"{where}.<{KEY_NAMES.get(name, 'hyperparameter')}>"))
                else:
                    children.append((child, where))
        todo[:0] = children  # depth first: a section's subsections follow it
    return list(tables.values())


def _text(text: str) -> str:
    """`<` and `>` outside code spans escaped: `hyperparameters.<model>` in prose is no HTML tag."""
    parts = text.split("`")
    return "`".join(p if k % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for k, p in enumerate(parts))


def _cell(text: str) -> str:
    return _text(text.replace("|", "\\|").replace("\n", " "))


def render_params_reference() -> str:
    out: list[str] = []
    for table in params_tables():
        title = f"`{table.path}`" if table.path else "Top-level keys"
        out += [f"### {title} ({table.cls.__name__})", ""]
        if table.also:
            out += ["Also at " + ", ".join(f"`{p}`" for p in table.also) + ".", ""]
        if table.doc:
            out += [_text(table.doc), ""]
        out += ["| key | type | default | shipped | description |", "| --- | --- | --- | --- | --- |"]
        for row in table.rows:
            cells = [f"`{row.name}`", row.type, f"`{row.default}`", f"`{row.shipped}`" if row.shipped else ""]
            out.append("| " + " | ".join(_cell(c) for c in [*cells, row.description]) + " |")
        out.append("")
    return "\n".join(out)


def render_commands_reference() -> str:
    from reprotab.cli import COMMANDS

    rows = [f"| `reprotab {name}` | `{module}` | {_cell(text)} |" for name, (module, text) in COMMANDS.items()]
    return "\n".join(["| command | module | does |", "| --- | --- | --- |", *rows, ""])


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs event: fill in the markers of a page."""
    if PARAMS_MARKER in markdown:
        markdown = markdown.replace(PARAMS_MARKER, render_params_reference())
    if COMMANDS_MARKER in markdown:
        markdown = markdown.replace(COMMANDS_MARKER, render_commands_reference())
    return markdown
