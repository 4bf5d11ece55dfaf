"""Throwaway apps with settings of their own, and the assertions every problem+json answer must pass."""

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI

from app.core.config import Settings
from app.main import create_app
from app.middleware.request_context import REQUEST_ID_HEADER

PROBLEM_CONTENT_TYPE = "application/problem+json"
# Long enough for the non-local checks; obviously not a real secret.
SAFE_SECRET = "s" * 40


def make_settings(**overrides: Any) -> Settings:
    """Settings from the test environment (APP_ENVIRONMENT=test, the worker's DB_NAME) plus `overrides`."""
    return Settings(_env_file=None, **overrides)


def build_app(*routers: APIRouter, **overrides: Any) -> FastAPI:
    """The real application (middleware, handlers, routes) with extra test-only routers and settings."""
    app = create_app(make_settings(**overrides))
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


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with the request id in header and body; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    request_id = response.headers[REQUEST_ID_HEADER]
    assert request_id
    assert body["request_id"] == request_id
    return body


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
