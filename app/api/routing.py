"""The route class of every /api/v1 router: `APIRouter(prefix=..., route_class=ApiRoute)`.

FastAPI reads and parses a JSON body before it runs any dependency, so a body it cannot parse is refused
before authentication and the rate limit. The rule (docs/decisions.md) is that such a body is answered for
what it is (422, or 413) before authentication; this class makes sure it is still counted against the rate
limit when it carries a valid token, so a client cannot send malformed requests unlimited. It also answers a
body that is not UTF-8 like any other body that is not JSON: 422 `json_invalid` (FastAPI says 400).
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from app.api.deps import count_refused_request

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                await count_refused_request(request)
                if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's "error parsing the body"
                    raise _not_json() from exc
                raise
            except RequestValidationError:
                await count_refused_request(request)
                raise

        return counted


def _not_json() -> RequestValidationError:
    error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error: the body is not UTF-8", "input": {}}
    return RequestValidationError([error])
