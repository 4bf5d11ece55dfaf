"""RFC 9457 problem details: the one shape every error response takes."""

from http import HTTPStatus
from typing import Any

from starlette.responses import JSONResponse

from app.core.context import get_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
# RFC 9110 renamed these; Python's HTTPStatus still has the RFC 7231 phrases.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


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
