"""RFC 9457 problem details: the one shape every error response takes, and how OpenAPI declares it."""

import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from starlette.responses import JSONResponse

from app.core.context import get_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
# RFC 9110 renamed these; Python's HTTPStatus still has the RFC 7231 phrases.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
_SCHEMA_REF = "#/components/schemas/{model}"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description='Where the error is, e.g. ["body", "url"] or ["query", "limit"].')
    msg: str
    type: str = Field(description='A machine-readable error type, e.g. "missing" or "string_too_short".')


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every error response, with `Content-Type: application/problem+json`."""

    # RFC 9457 extension members are allowed: a subclass documents the ones a response is known to carry.
    model_config = ConfigDict(extra="allow")

    type: str = Field(description='Always "about:blank": the status code says what went wrong.')
    title: str = Field(description="The status code's phrase.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a human.")
    request_id: str | None = Field(description="Quote it when reporting a problem (the X-Request-ID header).")
    errors: list[FieldError] = Field(
        default_factory=list, description="On a 422: every field that was rejected (absent on other problems)."
    )


def problem_response(
    status: int,
    detail: str,
    /,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    # Extensions add members but never replace the standard ones: a problem's `status` is its HTTP status.
    body: dict[str, Any] = {
        **extensions,
        "type": "about:blank",
        "title": title or _TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "request_id": get_request_id(),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_CONTENT_TYPE)


# The problem models that some route declares, by schema name; install_problem_schemas documents them.
_DECLARED_MODELS: dict[str, type[Problem]] = {}

_DESCRIPTIONS = {
    401: "No bearer token, or one that is invalid or expired.",
    403: "The token lacks a scope the route requires.",
    404: "No such resource (or it belongs to another client).",
    409: "The request conflicts with the resource's current state.",
    413: "The request body is over the size limit.",
    422: "The request is malformed or breaks a rule; `errors` names the fields.",
    429: "The client's rate limit is used up; retry after `Retry-After` seconds.",
    503: "A dependency is unavailable; retry later.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The bearer challenge (RFC 6750).", "schema": {"type": "string"}}},
    403: {"WWW-Authenticate": {"description": "Names the scopes required.", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds until the budget resets.", "schema": {"type": "integer"}}},
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying (sent while the database is down or the server busy).",
            "schema": {"type": "integer"},
        }
    },
}


def problem_responses(
    *statuses: int, model: type[Problem] = Problem, description: str | None = None
) -> dict[int | str, dict[str, Any]]:
    """A route's or router's `responses=`: each status answers an `application/problem+json` `model`.

    `description` replaces the generic one of every status given (so give it with a single status).
    """
    name = model.__name__
    if _DECLARED_MODELS.setdefault(name, model) is not model:
        raise ValueError(f"Two problem models are named {name}; OpenAPI needs distinct schema names.")
    schema = {"$ref": _SCHEMA_REF.format(model=name)}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": description or _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": schema}},
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[status] = response
    return responses


def install_problem_schemas(app: FastAPI) -> None:
    """Add the declared problem models to the app's OpenAPI components.

    FastAPI puts a response `model` under the route's own media type (application/json), so the problem
    responses reference their schema by name instead, and the schema itself is added here.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        document = generate()  # cached by FastAPI; adding the same schemas again changes nothing
        components = document.setdefault("components", {})
        schemas: dict[str, Any] = components.setdefault("schemas", {})
        # Only the models this app references: another app in the process may have declared others.
        text = json.dumps(document)
        used = [model for name, model in _DECLARED_MODELS.items() if f'"{_SCHEMA_REF.format(model=name)}"' in text]
        _, top = models_json_schema([(model, "serialization") for model in used], ref_template=_SCHEMA_REF)
        for name, schema in top.get("$defs", {}).items():
            # A model FastAPI documented already (e.g. one nested in a success response) stays as it is.
            existing = schemas.setdefault(name, schema)
            if existing.get("properties", {}).keys() != schema.get("properties", {}).keys():
                raise RuntimeError(f"Two different models are named {name}; OpenAPI needs distinct names.")
        components["schemas"] = dict(sorted(schemas.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]
