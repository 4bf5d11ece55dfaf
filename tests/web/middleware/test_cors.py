"""CORS is the outermost middleware: even 401 and 413 answers carry its headers for allowed origins."""

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem

ALLOWED = "http://localhost:3000"
DISALLOWED = "https://evil.example.com"


async def test_a_401_for_an_allowed_origin_carries_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Origin": ALLOWED})

    assert_problem(response, 401)
    assert response.headers["access-control-allow-origin"] == ALLOWED
    exposed = {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "ratelimit-remaining", "retry-after"} <= exposed


async def test_a_disallowed_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Origin": DISALLOWED})

    assert_problem(response, 401)
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_for_an_allowed_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/me",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "idempotency-key" in allowed_headers
    assert response.headers["access-control-max-age"] == "600"


async def test_preflight_for_a_disallowed_origin_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/me", headers={"Origin": DISALLOWED, "Access-Control-Request-Method": "GET"}
    )

    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


@pytest.fixture
async def small_limit_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(MAX_BODY_BYTES=8)) as client:
        yield client


async def test_a_413_for_an_allowed_origin_carries_cors_headers(small_limit_client: httpx.AsyncClient) -> None:
    response = await small_limit_client.post("/api/v1/me", content=b"x" * 100, headers={"Origin": ALLOWED})

    assert_problem(response, 413)
    assert response.headers["access-control-allow-origin"] == ALLOWED
