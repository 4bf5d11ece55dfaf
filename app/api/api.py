"""The versioned API: every domain router, behind authentication by default."""

from fastapi import APIRouter, Depends

from app.api.deps import authenticate
from app.api.me.points import router as me_router

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)])
api_router.include_router(me_router)
