"""The versioned API: every domain's router, behind authentication and the rate limit by default (`authenticate`
does both).

Each router is included into the app itself under /api/v1 (`include_api`), not into an /api/v1 router in
between: FastAPI keeps included routers as a tree and matches a request level by level, each level twice, and
a level cost about 50 us per request here. `make domain name=...` adds a domain's router to DOMAIN_ROUTERS.

A request is matched against the routers in this order, route by route, until one matches: every route tried
before the right one costs the request a few microseconds. List the routers that serve most requests first.
"""

from fastapi import APIRouter, Depends, FastAPI

from app.api.deps import authenticate
from app.api.me.points import router as me_router
from app.api.problems import API_ERRORS

API_PREFIX = "/api/v1"
DOMAIN_ROUTERS: tuple[APIRouter, ...] = (me_router,)


def include_api(app: FastAPI) -> None:
    """Include every domain's router in `app`, under API_PREFIX and behind `authenticate`."""
    for router in DOMAIN_ROUTERS:
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(authenticate)], responses=API_ERRORS)
