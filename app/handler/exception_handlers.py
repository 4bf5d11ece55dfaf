"""Map domain and framework errors to problem+json, so routers never need try/except."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.core.exceptions import AppError
from app.handler.problem import problem_response

UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred. Quote the request id when reporting it."


async def app_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return problem_response(exc.status_code, exc.detail, title=exc.title, headers=exc.headers, **exc.extensions)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}."
    elif exc.status_code == 405:
        detail = f"Method {request.method} is not allowed on {request.url.path}."
    return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))


def _field_error(error: Any) -> dict[str, Any]:
    # Only location, message and type: echoing `input` back could reflect secrets or huge bodies.
    return {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}


async def validation_error_handler(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_field_error(error) for error in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return problem_response(422, f"Request validation failed: {summary}", errors=errors)


async def unexpected_error_handler(_: Request, exc: Exception) -> Response:
    logger.opt(exception=exc).error("Unhandled error")
    return problem_response(500, UNEXPECTED_ERROR_DETAIL)


def register_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
