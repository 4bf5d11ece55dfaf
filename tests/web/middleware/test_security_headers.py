"""Security headers on every answer; HSTS only outside local/test."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Response

from app.web.middleware.security_headers import HSTS_VALUE
from tests.support.apps import build_app, serve
from tests.support.settings import SAFE_SECRET, SAFE_SECRET_KEYS

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}

framing_router = APIRouter(prefix="/test")


@framing_router.get("/framable")
async def framable(response: Response) -> dict[str, str]:
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return {"ok": "yes"}


@pytest.fixture(scope="module")
async def staging_client() -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(
        framing_router,
        APP_ENVIRONMENT="staging",
        JWT_SECRET=SAFE_SECRET,
        WEBHOOK_SECRET_KEYS=SAFE_SECRET_KEYS,
        DOCS_ENABLED=False,
    )
    async with serve(app) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/health/live", 200), ("GET", "/nowhere", 404), ("GET", "/api/v1/me", 401), ("POST", "/health/live", 405)],
)
async def test_every_answer_carries_the_headers_and_no_hsts_locally(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)

    assert response.status_code == status
    assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED
    assert "strict-transport-security" not in response.headers


@pytest.mark.parametrize(("path", "status"), [("/health/live", 200), ("/api/v1/me", 401)])
async def test_hsts_outside_local(staging_client: httpx.AsyncClient, path: str, status: int) -> None:
    response = await staging_client.get(path)

    assert response.status_code == status
    assert response.headers["strict-transport-security"] == HSTS_VALUE
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_route_may_set_its_own_value(staging_client: httpx.AsyncClient) -> None:
    response = await staging_client.get("/test/framable")

    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["referrer-policy"] == "no-referrer"
