"""Rate limiting per client `sub`, in the real Redis: headers on every answer, 429 past the limit.

Each test uses subjects of its own and a frozen clock in the middle of a window, so that neither reruns
within the same minute nor a window boundary falling between two requests can change the outcome.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from app.api.router import API_PREFIX
from app.api.routing import ApiRoute
from app.clients.rate_limiter import KEY_PREFIX, RETRY_AFTER_FAILURE_SECONDS, RateLimiter
from app.core.config import Settings
from tests.support.apps import build_app, serve
from tests.support.ports import closed_port
from tests.support.problems import assert_problem
from tests.support.tcp_proxy import tcp_proxy
from tests.support.tokens import HeadersFactory

LIMIT = 5
WINDOW_START = 1_800_000_000  # a multiple of 60
NOW = WINDOW_START + 45.5  # 14.5 s before the window ends: RateLimit-Reset is 15


def limiter_of(app: FastAPI) -> RateLimiter:
    limiter: RateLimiter = app.state.rate_limiter
    return limiter


@pytest.fixture
def sub() -> str:
    return f"rate-{uuid.uuid4().hex}"


@pytest.fixture
def bearer(headers_for: HeadersFactory) -> Callable[[str], dict[str, str]]:
    return lambda sub: headers_for(sub)


@pytest.fixture
async def limited() -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build_app(RATE_LIMIT_PER_MINUTE=LIMIT)
    async with serve(app) as client:
        limiter_of(app).clock = lambda: NOW
        yield app, client


async def test_the_sixth_request_in_a_minute_is_refused_with_retry_after(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str
) -> None:
    _, client = limited
    remaining = []
    for _ in range(LIMIT):
        response = await client.get("/api/v1/me", headers=bearer(sub))
        assert response.status_code == 200, response.text
        assert response.headers["RateLimit-Limit"] == str(LIMIT)
        assert response.headers["RateLimit-Reset"] == "15"
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]

    refused = await client.get("/api/v1/me", headers=bearer(sub))

    body = assert_problem(refused, 429)
    assert "5 requests per minute" in body["detail"]
    assert refused.headers["Retry-After"] == "15"
    assert refused.headers["RateLimit-Limit"] == str(LIMIT)
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert refused.headers["RateLimit-Reset"] == "15"


async def test_clients_have_budgets_of_their_own(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str
) -> None:
    _, client = limited
    for _ in range(LIMIT + 1):
        await client.get("/api/v1/me", headers=bearer(sub))
    assert (await client.get("/api/v1/me", headers=bearer(sub))).status_code == 429

    other = await client.get("/api/v1/me", headers=bearer(f"{sub}-other"))

    assert other.status_code == 200
    assert other.headers["RateLimit-Remaining"] == str(LIMIT - 1)


async def test_the_budget_starts_again_in_the_next_window(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str
) -> None:
    app, client = limited
    for _ in range(LIMIT + 1):
        await client.get("/api/v1/me", headers=bearer(sub))

    limiter_of(app).clock = lambda: WINDOW_START + 60.2
    response = await client.get("/api/v1/me", headers=bearer(sub))

    assert response.status_code == 200
    assert response.headers["RateLimit-Remaining"] == str(LIMIT - 1)
    assert response.headers["RateLimit-Reset"] == "60"


async def test_errors_raised_by_the_route_carry_the_headers_too(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str
) -> None:
    _, client = limited

    missing = await client.get(f"/api/v1/webhooks/{uuid.uuid4()}", headers=bearer(sub))
    invalid = await client.post("/api/v1/webhooks", json={"url": 1}, headers=bearer(sub))

    assert_problem(missing, 404)
    assert missing.headers["RateLimit-Remaining"] == str(LIMIT - 1)
    assert_problem(invalid, 422)
    assert invalid.headers["RateLimit-Remaining"] == str(LIMIT - 2)


async def test_unauthenticated_requests_and_health_probes_are_not_counted(
    limited: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = limited

    unauthenticated = await client.get("/api/v1/me")
    probes = [await client.get("/health/live") for _ in range(LIMIT + 2)]

    assert_problem(unauthenticated, 401)
    assert "RateLimit-Limit" not in unauthenticated.headers
    assert all(probe.status_code == 200 for probe in probes)
    assert all("RateLimit-Limit" not in probe.headers for probe in probes)


async def test_the_count_lives_in_redis_and_expires_with_its_window(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str, settings: Settings
) -> None:
    _, client = limited
    await client.get("/api/v1/me", headers=bearer(sub))
    await client.get("/api/v1/me", headers=bearer(sub))

    with Redis.from_url(settings.redis_url) as redis:
        key = f"{KEY_PREFIX}:{sub}:{WINDOW_START}"
        count, ttl = redis.get(key), redis.ttl(key)
        redis.delete(key)
    assert count == b"2"
    assert 0 < ttl <= 60


async def test_a_redis_that_lost_the_counting_script_gets_it_again(
    limited: tuple[FastAPI, httpx.AsyncClient], bearer: Callable[[str], dict[str, str]], sub: str
) -> None:
    app, client = limited
    await client.get("/api/v1/me", headers=bearer(sub))
    limiter_of(app)._count.sha = "0" * 40  # as after a Redis restart: EVALSHA answers NOSCRIPT

    response = await client.get("/api/v1/me", headers=bearer(sub))

    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Remaining"] == str(LIMIT - 2)


@pytest.mark.parametrize("fail_open", [True, False])
async def test_with_redis_unreachable_it_fails_open_or_closed_as_configured(
    fail_open: bool, bearer: Callable[[str], dict[str, str]], sub: str, warnings: list[str]
) -> None:
    overrides: dict[str, Any] = {"REDIS_PORT": closed_port(), "RATE_LIMIT_FAIL_OPEN": fail_open}
    async with serve(build_app(**overrides)) as client:
        first = await client.get("/api/v1/me", headers=bearer(sub))
        second = await client.get("/api/v1/me", headers=bearer(sub))

    if fail_open:
        assert first.status_code == second.status_code == 200
        assert "RateLimit-Limit" not in first.headers
    else:
        assert_problem(first, 503)
        assert_problem(second, 503)
    # Said once, not once per request.
    unavailable = [message for message in warnings if "Rate limiting is unavailable" in message]
    assert len(unavailable) == 1
    assert ("allowing requests" in unavailable[0]) is fail_open


async def test_while_redis_fails_it_is_asked_once_per_interval_and_its_return_is_said(
    settings: Settings, sub: str, log_lines: list[tuple[str, str]]
) -> None:
    """A Redis that hangs would otherwise cost every request the socket timeout."""
    now = [0.0]
    async with tcp_proxy(settings.REDIS_HOST, settings.REDIS_PORT) as proxy:
        redis = AsyncRedis(host="127.0.0.1", port=proxy.port, db=settings.REDIS_DB, socket_timeout=1)
        limiter = RateLimiter(redis, LIMIT, fail_open=True, clock=lambda: NOW, monotonic=lambda: now[0])
        assert await limiter.hit(sub) is not None
        proxy.cut()
        assert await limiter.hit(sub) is None  # this one asked Redis
        tried = proxy.accepted

        for _ in range(10):
            assert await limiter.hit(sub) is None
        skipped = proxy.accepted == tried  # not one connection attempt for them

        now[0] = RETRY_AFTER_FAILURE_SECONDS  # time to ask again; meanwhile Redis is back
        proxy.restore()
        status = await limiter.hit(sub)
        await redis.delete(f"{KEY_PREFIX}:{sub}:{WINDOW_START}")
        await redis.aclose()

    assert skipped
    assert status is not None
    assert status.remaining == LIMIT - 2  # counted again
    said = [(level, message) for level, message in log_lines if level in ("WARNING", "INFO")]
    assert [level for level, _ in said] == ["WARNING", "INFO"], said
    assert "Rate limiting works again" in said[1][1]


# ---- requests refused for their body before the rate limit ran ----------------------------------

JSON = {"Content-Type": "application/json"}
MALFORMED = b'{"url": '
NOT_UTF8 = b'{"url": "\xff\xfe"}'


@pytest.mark.parametrize("body", [MALFORMED, NOT_UTF8], ids=["malformed-json", "not-utf-8"])
async def test_a_body_that_is_not_json_is_counted_when_the_token_is_valid(
    limited: tuple[FastAPI, httpx.AsyncClient],
    bearer: Callable[[str], dict[str, str]],
    sub: str,
    body: bytes,
) -> None:
    _, client = limited
    answers = []
    for _ in range(LIMIT + 1):
        answers.append(await client.post("/api/v1/webhooks", content=body, headers={**bearer(sub), **JSON}))

    for answer in answers[:LIMIT]:
        problem = assert_problem(answer, 422)
        assert problem["errors"][0]["type"] == "json_invalid"
    assert [answer.headers["RateLimit-Remaining"] for answer in answers[:LIMIT]] == ["4", "3", "2", "1", "0"]
    refused = assert_problem(answers[LIMIT], 429)  # the budget is the same, valid body or not
    assert "5 requests per minute" in refused["detail"]
    assert (await client.get("/api/v1/me", headers=bearer(sub))).status_code == 429


async def test_a_malformed_body_without_a_valid_token_is_422_and_not_counted(
    limited: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # JSON syntax errors are answered before authentication (docs/decisions.md): 422 either way.
    _, client = limited
    anonymous = await client.post("/api/v1/webhooks", content=MALFORMED, headers=JSON)
    forged = await client.post(
        "/api/v1/webhooks", content=MALFORMED, headers={**JSON, "Authorization": "Bearer not-a-token"}
    )

    for response in (anonymous, forged):
        assert_problem(response, 422)
        assert "RateLimit-Limit" not in response.headers


async def test_a_schema_invalid_body_without_a_token_is_still_401(limited: tuple[FastAPI, httpx.AsyncClient]) -> None:
    _, client = limited
    assert_problem(await client.post("/api/v1/webhooks", json={"url": 1}), 401)


def test_every_api_route_counts_what_its_body_refused(app: FastAPI) -> None:
    # A router without route_class=ApiRoute would let unparsable bodies past the rate limit.
    api_routes = [
        rc.original_route
        for rc in iter_route_contexts(app.routes)
        if isinstance(rc.original_route, APIRoute) and (rc.path or "").startswith(API_PREFIX)
    ]
    assert api_routes
    assert all(isinstance(route, ApiRoute) for route in api_routes)
