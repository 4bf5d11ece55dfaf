"""Map domain and framework errors to problem+json, so routers never need try/except."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from app.api.api import API_PREFIX
from app.api.deps import authenticate, bearer_scheme, get_token_verifier
from app.core.exceptions import AppError
from app.handler.problem import install_problem_schemas, problem_response

UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred. Quote the request id when reporting it."


async def app_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem_response(exc.status_code, exc.detail, title=exc.title, headers=exc.headers, **exc.extensions)


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


def _under_api(request: Request) -> bool:
    path: str = request.scope["path"]
    root_path: str = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):  # served below a path prefix (--root-path)
        path = path.removeprefix(root_path)
    return path == API_PREFIX or path.startswith(f"{API_PREFIX}/")


async def _authentication_problem(request: Request) -> Response | None:
    """The API's authentication problem for a request that never reached it, else None.

    FastAPI parses a JSON body before it resolves the router's dependencies, so malformed JSON would
    answer 422 to a caller without a valid token; the API denies by default, so that caller gets 401.
    """
    if not _under_api(request) or hasattr(request.state, "client_sub"):  # authenticated already
        return None
    try:
        credentials = await bearer_scheme(request)
        await authenticate(request, credentials, get_token_verifier(request))
    except AppError as exc:  # 401, or 503 when an identity provider's keys are unavailable
        return await app_error_handler(request, exc)
    return None


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    denied = await _authentication_problem(request)
    if denied is not None:
        return denied
    errors = [_field_error(error) for error in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem_response(422, f"Request validation failed: {summary}", errors=errors)


async def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    logger.opt(exception=exc).error("Unhandled error")
    return problem_response(500, UNEXPECTED_ERROR_DETAIL)


def register_exception_handlers(app: FastAPI) -> None:
    """Render every error as a problem, and declare the problem schemas in the app's OpenAPI document."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    install_problem_schemas(app)
