"""The assertions every problem+json answer must pass."""

from typing import Any

import httpx

from app.web.middleware.request_context import REQUEST_ID_HEADER
from app.web.problem import PROBLEM_CONTENT_TYPE


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the request id in header and body; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    request_id = response.headers[REQUEST_ID_HEADER]
    assert request_id
    assert body["request_id"] == request_id
    return body


def assert_field_error(response: httpx.Response, loc: list[str | int]) -> list[dict[str, Any]]:
    """A 422 problem whose `errors` list names the field at `loc`; returns the errors."""
    body = assert_problem(response, 422)
    errors: list[dict[str, Any]] = body["errors"]
    assert isinstance(errors, list)
    assert errors
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert loc in [error["loc"] for error in errors], errors
    return errors
