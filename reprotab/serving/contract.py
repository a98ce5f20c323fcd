"""The service's OpenAPI contract (`/openapi.json`, shown at `/docs`): every endpoint's request and
responses, `/predict`'s rows described feature by feature from the served model's schema.

/predict reads its body itself (for speed and for its own error messages, reprotab/serving/payload.py),
so FastAPI cannot infer its schema: it is built here from the same schema the validator is built
from, and rebuilt when a new model is swapped in. Every error is the one envelope `Problem`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from reprotab.model.schema import Schema
from reprotab.serving.guard import VERSION_HEADER

MAX_REQUEST_ID = 200  # characters; a longer request_id is a 422


class ProblemEntry(BaseModel):
    row: int | None = Field(description="0-based row (or label) the error is about; null for the whole body")
    field: str | None = Field(description="the field it is about; null for the whole row or body")
    error: str


class Problem(BaseModel):
    """Every error the service answers (4xx and 5xx)."""

    detail: list[ProblemEntry]
    model_version: str


class Answer(BaseModel):
    id: str | int | None = Field(None, description="the row's id column, echoed when the row sent it")
    prediction: bool | int | float | str
    proba: dict[str, float] | None = Field(
        description="class probabilities (keys: the classes as text); null for regression"
    )


class PredictResponse(BaseModel):
    request_id: str
    model_version: str
    route: str = Field(description="champion or canary: which model answered")
    threshold: float | None
    predictions: list[Answer]
    cleaning: dict[str, dict[str, Any]] = Field(description="per feature, what cleaning changed in this request")


class Label(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | int | None = Field(None, description="the row's id (as sent to /predict)")
    request_id: str | None = Field(None, description="the request's id, when rows are not identified")
    position: int = Field(0, ge=0, description="the row's 0-based place in its request")
    label: bool | int | float | str = Field(description="the observed outcome: a class, or a number")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[Label] = Field(min_length=1)


class FeedbackResponse(BaseModel):
    received: int
    matched: dict[str, int] = Field(description="labels scored at once against remembered predictions, per route")
    model_version: str


ERRORS = {
    401: "no or an unknown API key",
    403: "the key lacks the scope this path needs",
    413: "body or batch over the limit",
    422: "the body or a row is not valid: one entry per bad row and field",
    429: "rate limit: see Retry-After",
    409: "the reload failed: the models serving stay (the reason is the error)",
    500: "an internal error (logged)",
    503: "overloaded, past its deadline, or not ready: see Retry-After",
}


def request_model(schema: Schema) -> type[BaseModel]:
    """The /predict body as a pydantic model, for its JSON schema (validation is payload.py's)."""
    fields: dict[str, Any] = {}
    for name in schema.features:
        if name in schema.numeric:
            kind: Any = float | bool | str | None
            text = "numeric feature: a number (text is parsed; null, blank or not a number is imputed)"
        else:
            kind = str | int | bool | None
            text = "categorical feature: text, an integer or a boolean (null is imputed, unseen is counted)"
        fields[name] = (kind, Field(..., description=text))
    if schema.id_column:
        fields[schema.id_column] = (str | int | None, Field(None, description="the row's id: echoed and logged"))
    row = create_model("Row", __config__=ConfigDict(extra="forbid"), **fields)
    return create_model(
        "PredictRequest",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(..., min_length=1)),
        request_id=(str | None, Field(None, max_length=MAX_REQUEST_ID, description="routes the canary; logged")),
    )


def openapi(app: FastAPI, schema: Schema, version: str) -> dict[str, Any]:
    """The whole OpenAPI document for the model with `schema`."""
    document = get_openapi(title="reprotab", version=version, routes=app.routes, description=__doc__)
    models: list[type[BaseModel]] = [request_model(schema), PredictResponse, Problem, FeedbackRequest, FeedbackResponse]
    pairs: list[Any] = [(m, "validation") for m in models]
    _, defs = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components.update(defs["$defs"])

    def ref(name: str) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}

    def problem(code: int) -> dict[str, Any]:
        return {"description": ERRORS[code], **ref("Problem"), "headers": _error_headers(code)}

    for path, operation in _operations(document):
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)  # FastAPI's own validation shape: never answered, the envelope is
        wanted = {c: t for c, t in ERRORS.items() if c != 409}
        if path not in ("/predict", "/feedback"):
            wanted = {c: t for c, t in wanted.items() if c not in (413, 422)}
        if path == "/admin/reload":
            wanted[409] = ERRORS[409]
        if path in ("/health",):
            wanted = {500: ERRORS[500]}
        if path == "/ready":
            wanted = {500: ERRORS[500], 503: ERRORS[503]}
        for code in wanted:
            responses[str(code)] = problem(code)
    post = document["paths"]["/predict"]["post"]
    post["requestBody"] = {"required": True, **ref("PredictRequest")}
    post["responses"]["200"] = {"description": "one answer per row, in order", **ref("PredictResponse")}
    feedback = document["paths"]["/feedback"]["post"]
    feedback["requestBody"] = {"required": True, **ref("FeedbackRequest")}
    feedback["responses"]["200"] = {"description": "labels stored", **ref("FeedbackResponse")}
    document["paths"]["/metrics"]["get"]["responses"]["200"]["content"] = {
        "text/plain": {"schema": {"type": "string", "description": "Prometheus text exposition format"}}
    }
    served = {"description": "the champion's version (on /predict, the answering model's)", **_required_text()}
    for _, operation in _operations(document):
        for answer in operation["responses"].values():
            answer.setdefault("headers", {})[VERSION_HEADER] = served
    document["components"]["securitySchemes"] = {
        "key": {"type": "http", "scheme": "bearer", "description": "an API key (`reprotab serve keys add`)"}
    }
    return document


def _required_text() -> dict[str, Any]:
    return {"required": True, "schema": {"type": "string", "minLength": 1}}


def _error_headers(code: int) -> dict[str, Any]:
    """The headers an error answer carries besides the version: the challenge on 401, the wait on 429
    (always) and 503 (when shedding load or not ready; a request past its deadline has none)."""
    if code == 401:
        return {"WWW-Authenticate": {"description": "Bearer: send `Authorization: Bearer <key>`", **_required_text()}}
    if code in (429, 503):
        wait = {"type": "integer", "minimum": 1}
        return {"Retry-After": {"description": "whole seconds to wait", "required": code == 429, "schema": wait}}
    return {}


def _operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, op) for path, item in document["paths"].items() for op in item.values() if isinstance(op, dict)]
