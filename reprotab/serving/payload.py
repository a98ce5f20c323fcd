"""The body of a /predict request: read within a byte limit, parsed, and its rows checked
against the model's schema. Every refusal is an `ApiError` (status 422 or 413) whose detail
has one entry per bad row and field: {"row": i | null, "field": name | null, "error": text}.

Rows are checked by a pydantic model built from the schema, with `extra="forbid"`: every
feature is required (null for unknown) and no other field is allowed but the schema's id column,
which is optional (text or an integer) and is echoed with the row's prediction and logged, so
labels that arrive later can be joined to predictions by id. Numeric features take a
finite number, a boolean, text or null (bare NaN and ±Infinity are not JSON and are refused,
though Python's JSON parser would accept them); categorical ones take text, an integer, a
boolean or null. What text in a numeric field becomes is the policy for every incoming row
(reprotab/data/incoming.py): a number, missing when blank or infinite, and when it is not a number
either missing (counted) or, if too few of the request's values in that field are numbers,
a 422 naming each such row and field (the service builds it). The request_id, when sent, is
text of at most `MAX_REQUEST_ID` characters.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import orjson
from fastapi import Request
from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from reprotab.model.schema import Schema
from reprotab.serving.contract import MAX_REQUEST_ID

Number = Annotated[float, Field(allow_inf_nan=False)]
Category = StrictStr | StrictInt | StrictBool


class ApiError(Exception):
    def __init__(
        self, status: int, detail: list[dict[str, Any]], kind: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers


def entry(row: int | None, field: str | None, error: str) -> dict[str, Any]:
    return {"row": row, "field": field, "error": error}


def rows_validator(schema: Schema) -> TypeAdapter:
    """A validator of a list of rows for the model's schema (fields aliased: any column name works)."""
    fields: dict[str, Any] = {}
    for i, name in enumerate(schema.features):
        kind = StrictBool | Number | StrictStr | None if name in schema.numeric else Category | None
        fields[f"f{i}"] = (kind, Field(alias=name))
    if schema.id_column:
        fields["row_id"] = (StrictStr | StrictInt | None, Field(None, alias=schema.id_column))
    row = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    return TypeAdapter(list[row])


def validation_errors(exc: ValidationError, schema: Schema) -> list[dict[str, Any]]:
    """One entry per bad (row, field), in the order found."""
    found: dict[tuple[int, str | None], str] = {}
    for error in exc.errors():
        loc = error["loc"]
        row, field = int(loc[0]), (str(loc[1]) if len(loc) > 1 else None)
        if field is None:
            message = "must be an object of feature: value"
        elif error["type"] == "missing":
            message = "missing: every feature is required (null for unknown)"
        elif error["type"] == "extra_forbidden":
            message = "unknown field: not a feature of the model" + (
                f" (nor its id column, {schema.id_column})" if schema.id_column else ""
            )
        elif field == schema.id_column:
            message = "must be text, an integer or null (the row's id)"
        elif field in schema.numeric:
            message = "must be a finite number, text, a boolean or null"
        else:
            message = "must be text, an integer, a boolean or null"
        found.setdefault((row, field), message)
    return [entry(row, field, message) for (row, field), message in found.items()]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to pass `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, [entry(None, None, f"body of {declared} bytes exceeds the limit of {limit}")], "too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, [entry(None, None, f"body exceeds the limit of {limit} bytes")], "too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(body: bytes, max_rows: int) -> tuple[list[Any], str]:
    """The rows and request id of a /predict body, or an ApiError."""
    try:
        data = orjson.loads(body)  # strict JSON, 2-3 times faster than the standard library's
    except orjson.JSONDecodeError:
        try:  # what orjson refuses and Python reads (bare NaN, ±Infinity, huge integers): refused per field below
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(422, [entry(None, None, f"malformed JSON: {exc}")], "malformed") from None
        try:  # Python also reads a lone surrogate ("\ud800"), which is no text: it could be neither answered nor logged
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise ApiError(
                422,
                [entry(None, None, "malformed JSON: a \\u escape names half a character (a lone surrogate)")],
                "malformed",
            ) from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or set(data) - {"rows", "request_id"}:
        raise ApiError(
            422, [entry(None, None, 'body must be {"rows": [{...}, ...], "request_id": optional text}')], "malformed"
        )
    rows, request_id = data["rows"], data.get("request_id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(422, [entry(None, "request_id", "must be text")], "malformed")
    if request_id is not None and len(request_id) > MAX_REQUEST_ID:
        raise ApiError(
            422,
            [entry(None, "request_id", f"longer than {MAX_REQUEST_ID} characters ({len(request_id)})")],
            "malformed",
        )
    if not rows:
        raise ApiError(422, [entry(None, "rows", "empty batch: send at least one row")], "validation")
    if len(rows) > max_rows:
        raise ApiError(
            413, [entry(None, "rows", f"{len(rows)} rows exceed the limit of {max_rows} per request")], "too_large"
        )
    return rows, request_id if request_id is not None else str(uuid.uuid4())
