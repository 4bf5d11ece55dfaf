"""Map domain and framework errors to problem+json, so routers never need try/except.

Errors nobody expected are not handled here: the request-context middleware is the one last-resort path
(it logs once, with the request id, and answers a 500 problem).
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from loguru import logger
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from app.core.exceptions import AppError, ValidationFailedError
from app.web.database_errors import register_database_error_handler
from app.web.problem import install_problem_schemas, problem_response


async def app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    extensions = dict(exc.extensions)
    if isinstance(exc, ValidationFailedError) and exc.field is not None:
        extensions["errors"] = [{"loc": _locate(request, exc.field), "msg": exc.detail, "type": "value_error"}]
    return problem_response(exc.status_code, exc.detail, title=exc.title, headers=exc.headers, **extensions)


def _locate(request: Request, field: str) -> list[str | int]:
    """Where the request carried `field`, in FastAPI's own `loc` shape: ["query", "cursor"], ["body", "url"]."""
    if field in request.path_params:
        return ["path", field]
    if field in request.query_params:
        return ["query", field]
    return ["body", field]


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}."
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}."
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem_response(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    path = request.scope["path"]
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path and route.methods and compile_path(route.path)[0].match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _field_error(error: Any) -> dict[str, Any]:
    # Only location, message and type: echoing `input` back could reflect secrets or huge bodies.
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}


async def validation_error_handler(_: Request, exc: Exception) -> Response:
    """A 422 listing every rejected field. It renders only: whether the caller is authenticated was decided
    before (FastAPI resolves the route's dependencies, authentication first, before it validates the body)."""
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem_response(422, f"Request validation failed: {summary}", errors=errors)


# A saturated pool frees up within moments; the log says so at most this often per app.
POOL_TIMEOUT_RETRY_AFTER_SECONDS = 1
POOL_TIMEOUT_WARNING_INTERVAL_SECONDS = 60.0


def pool_timeout_handler() -> Callable[[Request, Exception], Awaitable[Response]]:
    """503 for a request that got no database connection within DB_POOL_TIMEOUT_SECONDS: the database is busy
    serving others, so the client should come back shortly (Retry-After), instead of waiting on."""
    warned_at = float("-inf")

    async def handler(_: Request, exc: Exception) -> Response:
        nonlocal warned_at
        assert isinstance(exc, PoolTimeoutError)
        if time.monotonic() - warned_at >= POOL_TIMEOUT_WARNING_INTERVAL_SECONDS:
            warned_at = time.monotonic()
            logger.warning("No database connection free in time, answering 503 (DB_POOL_*): {}", exc)
        return problem_response(
            503,
            "Every database connection is busy; retry shortly.",
            headers={"Retry-After": str(POOL_TIMEOUT_RETRY_AFTER_SECONDS)},
        )

    return handler


def register_exception_handlers(app: FastAPI) -> None:
    """Render every expected error as a problem, and declare the problem schemas in the app's OpenAPI."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    register_database_error_handler(app)  # the database unreachable or past a deadline: 503, logged per outage
    app.add_exception_handler(PoolTimeoutError, pool_timeout_handler())  # busy, not down: 503, retry shortly
    install_problem_schemas(app)
