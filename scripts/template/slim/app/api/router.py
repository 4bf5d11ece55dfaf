"""The versioned API: every domain router, behind authentication and the rate limit by default (`authenticate`
does both).

`make domain name=...` adds a domain's router here.
"""

from fastapi import APIRouter, Depends

from app.api.deps import authenticate
from app.api.me.points import router as me_router
from app.api.problems import API_ERRORS

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticate)], responses=API_ERRORS)
api_router.include_router(me_router)
