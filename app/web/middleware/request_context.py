"""Request id in and out, access log, rate-limit headers and last-resort 500, as a pure ASGI middleware."""

import time
from typing import Any
from weakref import WeakKeyDictionary

from fastapi.routing import iter_route_contexts
from loguru import logger
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.context import request_id_var, resolve_request_id
from app.web.middleware.raw_headers import encode, header_value, set_headers
from app.web.problem import problem_response

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred. Quote the request id when reporting it."
# Per application: id(route) -> the route's full path template (an included router's route knows only its
# own part: "/messages/{message_id}" of "/api/v1/messages/{message_id}").
_route_templates: WeakKeyDictionary[Any, dict[int, str]] = WeakKeyDictionary()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming = header_value(scope, _REQUEST_ID_KEY)
        request_id = resolve_request_id(incoming.decode("latin-1") if incoming is not None else None)
        scope.setdefault("state", {})["request_id"] = request_id
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                # The rate-limit headers are set by `authenticate` as it counts the request; added here so that they
                # reach every response of a counted request, errors raised after it included (404, 409, ...).
                added = [(_REQUEST_ID_KEY, request_id.encode("latin-1"))]
                added += encode(scope["state"].get("rate_limit_headers", {}))
                set_headers(message, added, replace=True)
            await send(message)

        # Every log line written while serving the request carries request_id (see app/core/logging.py).
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            # The one last-resort path: every error no handler answered is logged here, once, and
            # answered with a 500 problem (unless the response had started: then the connection is cut).
            logger.exception("Unhandled error")
            if response_started:
                raise
            await problem_response(500, UNEXPECTED_ERROR_DETAIL)(scope, receive, send_with_request_id)
        finally:
            _log_access(scope, status_code, time.perf_counter() - started)
            request_id_var.reset(token)


def _route_template(scope: Scope) -> str:
    """The matched route's path template (low-cardinality, no ids), or the raw path if none matched."""
    route, app = scope.get("route"), scope.get("app")
    if route is None:
        return str(scope["path"])
    if app is not None:
        templates = _route_templates.get(app)
        if templates is None:
            templates = {id(rc.original_route): rc.path for rc in iter_route_contexts(app.routes) if rc.path}
            _route_templates[app] = templates
        if template := templates.get(id(route)):
            return template
    return getattr(route, "path", None) or str(scope["path"])


def _log_access(scope: Scope, status_code: int, elapsed: float) -> None:
    fields = {
        "method": scope["method"],
        "route": _route_template(scope),
        "status": status_code,
        "duration_ms": round(elapsed * 1000, 2),
        "client_sub": scope.get("state", {}).get("client_sub"),
    }
    logger.info("{method} {route} {status} {duration_ms}ms", **fields)
