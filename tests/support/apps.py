"""Throwaway apps with settings of their own, served over ASGI with their lifespan running."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from app.main import create_app
from tests.support.settings import test_settings


def build_app(*routers: APIRouter, **overrides: Any) -> FastAPI:
    """The real application (middleware, handlers, routes) with extra test-only routers and settings."""
    app = create_app(test_settings(**overrides))
    for router in routers:
        app.include_router(router)
    return app


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and talk to it over ASGI, as the `client` fixture does."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
