"""Liveness and readiness against the real PostgreSQL and Redis, and against really unreachable ones."""

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.health.models import ReadinessProblem
from app.api.health.points import get_health_service
from app.api.health.service import HealthService
from app.core.config import Settings
from app.db.engine import create_engine
from app.db.migrations import shipped_migration_versions
from tests.support.apps import build_app, serve
from tests.support.database import scratch_database
from tests.support.ports import closed_port
from tests.support.problems import assert_problem
from tests.support.settings import test_settings


async def ready_with(
    client: httpx.AsyncClient,
    app: FastAPI,
    *,
    database: AsyncEngine | None = None,
    redis: Redis | None = None,
    versions: frozenset[str] | None = None,
    check_timeout: float = 2.0,
    redis_required: bool = False,
) -> httpx.Response:
    """GET /health/ready with the readiness checks pointed at `database`, `redis` and `versions`."""
    health = HealthService(
        database or app.state.engine,
        redis or app.state.redis,
        shipped_migration_versions() if versions is None else versions,
        check_timeout,
        redis_required=redis_required,
    )
    app.dependency_overrides[get_health_service] = lambda: health
    return await client.get("/health/ready")


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_everything_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"database": {"status": "ok", "detail": None}, "redis": {"status": "ok", "detail": None}},
    }


async def test_ready_but_degraded_while_redis_is_unreachable() -> None:
    # The API keeps working without Redis (the rate limiter fails open, messages wait for housekeeping):
    # a Redis blip must not take every instance out of the load balancer.
    async with serve(build_app(REDIS_PORT=closed_port())) as client:
        response = await client.get("/health/ready")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == {"status": "ok", "detail": None}
    assert body["checks"]["redis"]["status"] == "degraded"
    assert body["checks"]["redis"]["detail"].startswith("unreachable (")


async def test_not_ready_when_redis_is_unreachable_and_the_rate_limiter_fails_closed() -> None:
    async with serve(build_app(REDIS_PORT=closed_port(), RATE_LIMIT_FAIL_OPEN=False)) as client:
        response = await client.get("/health/ready")

    body = assert_problem(response, 503)
    ReadinessProblem.model_validate(body)  # the schema OpenAPI declares for this 503
    assert body["checks"]["database"] == {"status": "ok", "detail": None}
    assert body["checks"]["redis"]["status"] == "failing"
    assert body["checks"]["redis"]["detail"].startswith("unreachable (")
    assert body["detail"].startswith("Not ready (redis: unreachable")


async def test_not_ready_when_postgres_is_unreachable(client: httpx.AsyncClient, app: FastAPI) -> None:
    dead_engine = create_engine(test_settings(DB_HOST="127.0.0.1", DB_PORT=closed_port()))
    try:
        response = await ready_with(client, app, database=dead_engine)
    finally:
        await dead_engine.dispose()

    body = assert_problem(response, 503)
    assert body["checks"]["redis"] == {"status": "ok", "detail": None}
    assert body["checks"]["database"]["status"] == "failing"
    assert body["checks"]["database"]["detail"].startswith("unreachable (")
    assert str(dead_engine.url.port) not in response.text  # addresses stay in the log


async def test_not_ready_while_a_shipped_migration_is_not_applied(client: httpx.AsyncClient, app: FastAPI) -> None:
    shipped = shipped_migration_versions() | {"29991231235959"}
    response = await ready_with(client, app, versions=shipped)

    body = assert_problem(response, 503)
    assert body["checks"]["database"]["detail"] == "migrations not applied: 29991231235959"
    assert body["checks"]["redis"]["status"] == "ok"


async def test_ready_when_the_database_is_ahead_of_the_code(client: httpx.AsyncClient, app: FastAPI) -> None:
    # During a rolling deploy the new release has migrated; the old instances must stay in service.
    older_code = frozenset(sorted(shipped_migration_versions())[:-1])
    response = await ready_with(client, app, versions=older_code)

    assert response.status_code == 200, response.text


@pytest.fixture
def unmigrated(settings: Settings) -> Iterator[Settings]:
    """An empty database: created, never migrated."""
    with scratch_database(settings, "unmigrated") as scratch:
        yield scratch


async def test_not_ready_when_the_database_was_never_migrated(
    client: httpx.AsyncClient, app: FastAPI, unmigrated: Settings
) -> None:
    bare_engine = create_engine(unmigrated)
    try:
        response = await ready_with(client, app, database=bare_engine)
    finally:
        await bare_engine.dispose()

    body = assert_problem(response, 503)
    assert body["checks"]["database"]["detail"] == "not migrated (no schema_migrations table)"


@pytest.mark.parametrize("required", [False, True])
async def test_a_hung_redis_is_reported_within_the_timeout(
    client: httpx.AsyncClient, app: FastAPI, silent_port: int, required: bool
) -> None:
    hung = Redis(host="127.0.0.1", port=silent_port)
    try:
        response = await ready_with(client, app, redis=hung, check_timeout=0.2, redis_required=required)
    finally:
        await hung.aclose()

    if required:
        body = assert_problem(response, 503)
        assert body["checks"]["redis"] == {"status": "failing", "detail": "no answer within 0.2s"}
    else:
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["redis"] == {"status": "degraded", "detail": "no answer within 0.2s"}
