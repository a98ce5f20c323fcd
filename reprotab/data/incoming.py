"""Rows that arrive after training, cleaned by one function with one policy.

Batch scoring (`reprotab predict`), the service, the monitor, the labeling pool (`reprotab query`)
and pseudo-labeling's unlabeled rows all call `clean_incoming`, so the same values get the same
treatment and the same notes everywhere. The policy:

1. Columns. Every feature column the model was trained on must be present; a missing one is a
   UserError naming all of them, with a rename proposed for each from the given columns the model
   does not use (never the target, the id column or a column the training table never used, such as
   data.drop_columns). Other columns are ignored (`Cleaned.ignored`).
2. Numeric features. Numbers are kept; booleans and the words true/false become 1/0 (as a CSV
   reader makes booleans of them); text is stripped and parsed as a number; blank text is missing.
   A value that is not a number becomes missing (the model imputes it) and is counted, with up to
   3 examples. A column in which fewer than `min_share` of the present values are numbers is not
   the feature the model learned: the rows are refused (`NotNumbers`, a UserError naming each such
   column, its share and examples) rather than every row scored on an imputed value. `min_share`
   is prepare's `text_to_number_min_share` (0.95 by default): the share that made a text column
   numeric in training. The rule judges the rows given at once: a whole batch for the monitor,
   the labeling pool and pseudo-labeling, each chunk of `--chunk-rows` rows for `predict`, one
   request for the service (so a 1-row request with text in a numeric field is refused: a 422
   naming the row and the field).
3. Infinities. ±inf (a number or text such as "inf") becomes missing and is counted.
4. Categorical features are passed as they are: the featurizer maps a category it never saw to
   its infrequent group or all zeros (one-hot) or the mean target (target encoding). Values
   outside the categories the fitted featurizer learned (`learned_categories`) are counted per
   column with up to 3 examples.
5. Per column, `missing` counts the values missing after cleaning: what the model imputes.

What was changed is reported per column (`Cleaned.notes`, JSON-ready through `Cleaned.report`)
and logged by `log_notes`, one warning per column with text, infinities or unseen categories,
in one grammar: `<where>: column '<name>': <what>, <treated how>; ...`.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema

MISSING = "__missing__"  # a missing category's text (reprotab/model/featurizer.py's MISSING)

MIN_SHARE = 0.95  # params.yaml prepare.text_to_number_min_share's default
EXAMPLES = 3
BOOLEAN_WORDS = {"true": 1.0, "false": 0.0}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnNote:
    """What cleaning found in one column of `rows` rows; examples are the values as text."""

    rows: int
    missing: int = 0
    text: int = 0
    text_examples: tuple[str, ...] = ()
    infinite: int = 0
    unseen: int = 0
    unseen_examples: tuple[str, ...] = ()
    share: float | None = None  # numeric columns: share of the present values that are numbers

    @property
    def changed(self) -> bool:
        """Cleaning changed a value or met a category the model never saw."""
        return bool(self.text or self.infinite or self.unseen)

    @property
    def present(self) -> int:
        """Values given (not missing, not blank) before cleaning."""
        return self.rows - self.missing + self.text + self.infinite

    def merge(self, other: ColumnNote) -> ColumnNote:
        """The note of both parts together (batch scoring cleans a file chunk by chunk)."""
        parts = [(n.share, n.present) for n in (self, other) if n.share is not None]
        numbers, present = sum(share * given for share, given in parts), sum(given for _, given in parts)
        return ColumnNote(
            rows=self.rows + other.rows,
            missing=self.missing + other.missing,
            text=self.text + other.text,
            text_examples=_first(self.text_examples + other.text_examples),
            infinite=self.infinite + other.infinite,
            unseen=self.unseen + other.unseen,
            unseen_examples=_first(self.unseen_examples + other.unseen_examples),
            share=round(numbers / present, 6) if present else None,
        )

    def describe(self) -> str:
        """What was found and done, in the log's grammar."""
        parts = []
        if self.text:
            parts.append(
                f"{self.text} of {self.rows} values are not numbers ({_examples(self.text_examples)}), "
                "treated as missing"
            )
        if self.infinite:
            parts.append(f"{self.infinite} of {self.rows} values are infinite, treated as missing")
        if self.unseen:
            parts.append(
                f"{self.unseen} of {self.rows} values are categories the model never saw "
                f"({_examples(self.unseen_examples)}), encoded as unseen"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class Cleaned:
    """The cleaned rows (id column first when given, then the features in the model's order,
    the input's index kept), a note per feature column, the columns the model does not use."""

    frame: pd.DataFrame
    notes: Mapping[str, ColumnNote] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()

    def report(self) -> dict[str, Any]:
        """JSON-ready: rows and, per noted column, its counts and examples."""
        noted = {c: _note_dict(n) for c, n in self.notes.items() if n.missing or n.changed}
        return {"rows": len(self.frame), "columns": noted}

    def changes(self) -> dict[str, dict[str, Any]]:
        """Per column that cleaning changed (or holding unseen categories): what it found."""
        return {c: _note_dict(n) for c, n in self.notes.items() if n.changed}


class NotNumbers(UserError):
    """Numeric features where fewer than `min_share` of the present values are numbers;
    `notes` has each such column's note, `rows` the positions of the refused values."""

    def __init__(self, message: str, notes: dict[str, ColumnNote], rows: dict[str, list[int]]) -> None:
        super().__init__(message)
        self.notes, self.rows = notes, rows


def clean_incoming(
    rows: pd.DataFrame, schema: Schema, *, featurizer: Any, where: str, min_share: float = MIN_SHARE
) -> Cleaned:
    """`rows` cleaned by the policy in the module docstring; `featurizer` is the model's fitted
    featurizer (for the categories it learned; None skips that count)."""
    ignored = require_features(list(map(str, rows.columns)), schema, where=where)
    known = learned_categories(featurizer) if featurizer is not None else {}
    columns: dict[str, Any] = {}
    notes: dict[str, ColumnNote] = {}
    refused: dict[str, ColumnNote] = {}
    refused_rows: dict[str, list[int]] = {}
    if schema.id_column and schema.id_column in rows.columns:
        columns[schema.id_column] = rows[schema.id_column]
    for column in schema.features:
        values = rows[column]
        if column in schema.numeric:
            numbers, note, not_numbers = _numeric(values)
            columns[column] = pd.Series(numbers, index=rows.index, name=column)
            if note.share is not None and note.share < min_share:
                refused[column], refused_rows[column] = note, not_numbers
        else:
            columns[column] = values
            note = _categorical(values, known.get(column))
        notes[column] = note
    if refused:
        raise NotNumbers(_refusal(refused, where=where, min_share=min_share), refused, refused_rows)
    frame = pd.DataFrame(columns, index=rows.index, copy=False)  # no consolidated copy: 1,000 columns x 1M rows
    return Cleaned(frame=frame, notes=MappingProxyType(notes), ignored=tuple(ignored))


@dataclass(frozen=True)
class CleanedRows:
    """Rows as the service receives them (JSON objects), cleaned by the same policy without a
    frame: per numeric feature its floats, per categorical one its values as the encoders' text
    (reprotab/model/plan.py `levels_of`), a note per feature column."""

    n: int
    numbers: tuple[list[float], ...]  # in schema.numeric order
    levels: Mapping[str, list[str]]
    notes: Mapping[str, ColumnNote] = field(default_factory=dict)

    def changes(self) -> dict[str, dict[str, Any]]:
        """Per column that cleaning changed (or holding unseen categories): what it found."""
        return {c: _note_dict(n) for c, n in self.notes.items() if n.changed}


NUMBER, ABSENT, NOT_NUMBER, INFINITE = range(4)  # what `number_of` found


def number_of(value: Any) -> tuple[float, int]:
    """One value of a numeric feature (JSON types: number, boolean, text, null) and what it was,
    by the policy `_numeric` applies to a column: booleans and true/false are 1/0, text is
    stripped and parsed (ASCII digits only, as pandas parses), blank or null is missing, ±inf is
    missing and counted, anything else is missing and counted as not a number."""
    if value is None:
        return math.nan, ABSENT
    if isinstance(value, bool):
        return float(value), NUMBER
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return math.nan, ABSENT
        word = BOOLEAN_WORDS.get(text.lower())
        if word is not None:
            return word, NUMBER
        try:
            number = float(text) if text.isascii() and "_" not in text else math.nan
        except ValueError:
            number = math.nan
        if math.isnan(number):
            return math.nan, NOT_NUMBER
    if math.isinf(number):
        return math.nan, INFINITE
    return (number, NUMBER) if not math.isnan(number) else (math.nan, ABSENT)


def _number_of(value: Any) -> tuple[float, int]:
    """`number_of`, with the common case (a finite JSON number) first and inline."""
    kind = type(value)
    if kind is float or kind is int:
        number = float(value)
        if number - number == 0:  # finite (inf - inf and nan - nan are nan)
            return number, NUMBER
    return number_of(value)


def clean_rows(
    rows: list[dict[str, Any]],
    schema: Schema,
    *,
    known: Mapping[str, frozenset[str]],
    where: str,
    min_share: float = MIN_SHARE,
) -> CleanedRows:
    """`rows` (objects holding every feature, as the service has validated them) cleaned by the
    policy in the module docstring, with the notes and refusals `clean_incoming` gives the same
    rows as a frame; `known` is the model's learned categories (reprotab/model/plan.py `learned`)."""
    n = len(rows)
    numbers: list[list[float]] = []
    notes: dict[str, ColumnNote] = {}
    refused: dict[str, ColumnNote] = {}
    refused_rows: dict[str, list[int]] = {}
    for column in schema.numeric:
        parsed = [_number_of(row[column]) for row in rows]
        numbers.append([value for value, _ in parsed])
        kinds = [kind for _, kind in parsed]
        text = [i for i, kind in enumerate(kinds) if kind == NOT_NUMBER]
        present = n - kinds.count(ABSENT)
        examples = tuple(dict.fromkeys(str(rows[i][column]) for i in text))[:EXAMPLES]
        share = round((present - len(text)) / present, 6) if present else None
        note = ColumnNote(
            n,
            missing=n - kinds.count(NUMBER),
            text=len(text),
            text_examples=examples,
            infinite=kinds.count(INFINITE),
            share=share,
        )
        notes[column] = note
        if share is not None and share < min_share:
            refused[column], refused_rows[column] = note, text
    if refused:
        raise NotNumbers(_refusal(refused, where=where, min_share=min_share), refused, refused_rows)
    levels: dict[str, list[str]] = {}
    for column in schema.categorical:
        values = [row[column] for row in rows]
        levels[column] = [MISSING if v is None else v if isinstance(v, str) else str(v) for v in values]
        categories = known.get(column)
        missing = values.count(None)
        if not categories:
            notes[column] = ColumnNote(n, missing=missing)
            continue
        unseen = [
            text for text, v in zip(levels[column], values, strict=True) if v is not None and text not in categories
        ]
        notes[column] = ColumnNote(
            n, missing=missing, unseen=len(unseen), unseen_examples=tuple(dict.fromkeys(unseen))[:EXAMPLES]
        )
    ordered = {c: notes[c] for c in schema.features}
    return CleanedRows(n=n, numbers=tuple(numbers), levels=MappingProxyType(levels), notes=MappingProxyType(ordered))


def require_features(columns: list[str], schema: Schema, *, where: str) -> list[str]:
    """The given columns the model does not use; a UserError when a feature column is missing,
    proposing for each a rename from the unused columns (never the target, the id column or a
    column the training table had but never used as a feature, such as data.drop_columns)."""
    given = set(columns)
    missing = [c for c in schema.features if c not in given]
    used = {*schema.features, schema.id_column}
    ignored = [c for c in columns if c not in used]
    if missing:
        spare = [c for c in ignored if c != schema.target and c not in schema.ignored]
        renames = []
        for name in missing:
            close = _closest(name, spare)
            if close:
                renames.append(f"'{close}' to '{name}'")
                spare.remove(close)
        fix = f"Rename {', '.join(renames)}" if renames else "Add them"
        if renames and len(renames) < len(missing):
            fix += " and add the others"
        rule = f"lacks {len(missing)} feature column(s) the model was trained on"
        raise UserError(problem(where, rule, missing, fix))
    return ignored


def learned_categories(featurizer: Any) -> Mapping[str, frozenset[str]]:
    """Per categorical column, the categories the fitted featurizer learned, as the text it
    compares (one-hot and target encoders alike; a missing value's placeholder included).
    `featurizer` is a served model's plan (reprotab/model/plan.py) or a fitted transformer."""
    known = getattr(featurizer, "learned", None)
    return known if known is not None else _fitted_categories(featurizer)


@functools.lru_cache(maxsize=8)
def _fitted_categories(featurizer: Any) -> Mapping[str, frozenset[str]]:
    found: dict[str, frozenset[str]] = {}
    for name, transformer, columns in getattr(featurizer, "transformers_", []):
        steps = getattr(transformer, "named_steps", {})
        encoder = steps.get("encode") if name in ("categorical", "target") else None
        if encoder is None or not len(columns):
            continue
        for column, categories in zip(columns, encoder.categories_, strict=True):
            found[str(column)] = frozenset(map(str, categories))
    return MappingProxyType(found)


def log_notes(notes: Mapping[str, ColumnNote], *, where: str) -> None:
    """One warning per column that cleaning changed (or holding unseen categories)."""
    for column, note in notes.items():
        if note.changed:
            log.warning("%s: column '%s': %s", where, column, note.describe())


def merge_notes(total: Mapping[str, ColumnNote], notes: Mapping[str, ColumnNote]) -> dict[str, ColumnNote]:
    """The notes of the rows so far (`total`) and of the next rows together, per column."""
    return {c: total[c].merge(n) if c in total else n for c, n in notes.items()}


def _numeric(values: pd.Series) -> tuple[np.ndarray, ColumnNote, list[int]]:
    """Floats, the column's note and the positions of the values that are not numbers."""
    rows = len(values)
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        infinite = int(np.isinf(numbers).sum())
        present = rows - int(np.isnan(numbers).sum())
        numbers = np.where(np.isinf(numbers), np.nan, numbers) if infinite else numbers
        share = 1.0 if present else None
        return numbers, ColumnNote(rows, missing=int(np.isnan(numbers).sum()), infinite=infinite, share=share), []
    # Text (or mixed objects): each distinct value is parsed once, as its text (True is "True").
    codes, distinct = pd.factorize(values.astype("string"), use_na_sentinel=True)
    text = pd.Series(np.asarray(distinct, dtype=object), dtype=object).str.strip()
    words = text.str.lower().map(BOOLEAN_WORDS)
    parsed = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    parsed = np.where(words.notna(), words.to_numpy(dtype=float, na_value=np.nan), parsed)
    blank = (text == "").to_numpy()
    bad = ~blank & np.isnan(parsed)  # distinct values that are not numbers
    per_value = np.bincount(codes[codes >= 0], minlength=len(distinct))
    present = int(per_value[~blank].sum())
    not_numbers = int(per_value[bad].sum())
    infinite = int(per_value[np.isinf(parsed)].sum())
    cleaned = np.where(np.isinf(parsed), np.nan, parsed)
    numbers = np.where(codes >= 0, cleaned[np.maximum(codes, 0)] if len(distinct) else np.nan, np.nan)
    examples = tuple(str(distinct[i]) for i in np.flatnonzero(bad)[:EXAMPLES])
    note = ColumnNote(
        rows,
        missing=int(np.isnan(numbers).sum()),
        text=not_numbers,
        text_examples=examples,
        infinite=infinite,
        share=round((present - not_numbers) / present, 6) if present else None,
    )
    positions = np.flatnonzero(np.isin(codes, np.flatnonzero(bad))).tolist() if not_numbers else []
    return numbers.astype(float), note, positions


def _categorical(values: pd.Series, known: frozenset[str] | None) -> ColumnNote:
    missing = int(values.isna().sum())
    if not known:
        return ColumnNote(len(values), missing=missing)
    # The text the featurizer compares (reprotab/model/featurizer.py `to_levels`): each value's str.
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    if not all(isinstance(v, str) for v in distinct):  # factorizing objects merges True and 1
        codes, distinct = pd.factorize(values.astype(object).map(str, na_action="ignore"), use_na_sentinel=True)
    unseen = np.array([str(v) not in known for v in distinct], dtype=bool)
    per_value = np.bincount(codes[codes >= 0], minlength=len(distinct))
    examples = tuple(str(distinct[i]) for i in np.flatnonzero(unseen)[:EXAMPLES])
    return ColumnNote(len(values), missing=missing, unseen=int(per_value[unseen].sum()), unseen_examples=examples)


def _refusal(refused: dict[str, ColumnNote], *, where: str, min_share: float) -> str:
    got = {c: f"{n.share:.0%} numbers, {_examples(n.text_examples)}" for c, n in refused.items()}
    rule = f"numeric features hold text that is not numbers (at least {min_share:.0%} of the present values must be)"
    return problem(where, rule, got, "Fix the export of these columns, or send numbers")


def _closest(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def _first(examples: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(examples))[:EXAMPLES]


def _examples(examples: tuple[str, ...]) -> str:
    return "e.g. " + ", ".join(map(repr, examples))


def _note_dict(note: ColumnNote) -> dict[str, Any]:
    raw = asdict(note)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}
