"""A database that is down, busy or too slow is a 503 with Retry-After, logged once per outage; a database
error that is a bug stays a 500.

The outage is real: the app talks to the suite's PostgreSQL through a local TCP proxy that the test cuts
(connections reset, new ones refused) or freezes (nothing forwarded), so the server itself is never touched.
"""

import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.api.deps import SessionDep
from app.core.outages import OutageEpisodes
from app.db.errors import is_database_unavailable
from app.web.database_errors import OutageLog
from app.web.middleware.request_context import UNEXPECTED_ERROR_DETAIL
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem
from tests.support.tcp_proxy import TcpProxy
from tests.support.tokens import HeadersFactory

db_router = APIRouter(prefix="/test/db")


@db_router.get("/one")
async def one(session: SessionDep) -> int:
    return int((await session.execute(text("SELECT 1"))).scalar_one())


@db_router.get("/sleep")
async def sleep(session: SessionDep) -> None:
    await session.execute(text("SELECT pg_sleep(5)"))


@db_router.get("/orphan")
async def orphan(session: SessionDep) -> None:
    # A delivery of a message that does not exist: a foreign-key violation no code path expects.
    await session.execute(
        text(
            "INSERT INTO deliveries (message_id, webhook_id, attempt, status, duration_ms)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'failed', 1)"
        )
    )


def proxied(proxy: TcpProxy, **overrides: Any) -> dict[str, Any]:
    return {"DB_HOST": "127.0.0.1", "DB_PORT": proxy.port, **overrides}


def assert_unavailable(response: httpx.Response) -> None:
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5"
    assert "database" in body["detail"].lower()


def errors_of(log_lines: list[tuple[str, str]]) -> list[str]:
    return [message for level, message in log_lines if level in ("ERROR", "CRITICAL")]


async def test_a_lost_database_is_a_503_logged_once_and_the_app_recovers_by_itself(
    database_proxy: TcpProxy, log_lines: list[tuple[str, str]]
) -> None:
    async with serve(build_app(db_router, **proxied(database_proxy))) as client:
        assert (await client.get("/test/db/one")).status_code == 200

        database_proxy.cut()
        started = time.perf_counter()
        during = [await client.get("/test/db/one") for _ in range(10)]
        elapsed = time.perf_counter() - started
        database_proxy.restore()
        after = await client.get("/test/db/one")

    for response in during:
        assert_unavailable(response)
    assert elapsed < 5, f"ten refused requests took {elapsed:.1f}s"
    # One ERROR line for the whole outage (one Sentry event), no "Unhandled error" per request.
    errors = errors_of(log_lines)
    assert len(errors) == 1, errors
    assert errors[0].startswith("Database unavailable, answering 503")
    assert after.status_code == 200, after.text


async def test_a_database_that_stops_answering_is_a_503_within_the_statement_deadline(
    database_proxy: TcpProxy,
) -> None:
    # The server's statement_timeout cannot fire when no packet reaches it: the client-side deadline
    # (the statement timeout plus a margin) ends the wait.
    overrides = proxied(database_proxy, DB_STATEMENT_TIMEOUT_SECONDS=0.3, DB_CONNECT_TIMEOUT_SECONDS=0.5)
    async with serve(build_app(db_router, **overrides)) as client:
        assert (await client.get("/test/db/one")).status_code == 200
        database_proxy.freeze()
        started = time.perf_counter()
        response = await client.get("/test/db/one")
        elapsed = time.perf_counter() - started
        database_proxy.restore()

    assert_unavailable(response)
    assert elapsed < 6, f"the frozen request took {elapsed:.1f}s"


async def test_an_unreachable_database_at_start_is_a_503_within_the_connect_timeout(silent_port: int) -> None:
    app = build_app(db_router, DB_HOST="127.0.0.1", DB_PORT=silent_port, DB_CONNECT_TIMEOUT_SECONDS=0.3)
    async with serve(app) as client:
        started = time.perf_counter()
        response = await client.get("/test/db/one")
        elapsed = time.perf_counter() - started

    assert_unavailable(response)
    assert elapsed < 3, f"connecting took {elapsed:.1f}s"


async def test_a_statement_over_the_timeout_is_a_503() -> None:
    async with serve(build_app(db_router, DB_STATEMENT_TIMEOUT_SECONDS=0.2)) as client:
        started = time.perf_counter()
        response = await client.get("/test/db/sleep")
        elapsed = time.perf_counter() - started

    assert_unavailable(response)
    assert elapsed < 3, f"the 5 s statement ran {elapsed:.1f}s"


async def test_a_row_locked_past_the_lock_timeout_is_a_503(headers_for: HeadersFactory) -> None:
    headers = headers_for(f"lock-{uuid.uuid4().hex}")
    app = build_app(DB_LOCK_TIMEOUT_SECONDS=0.2)
    async with serve(app) as client:
        created = await client.post("/api/v1/messages", json={"event": "order.created", "payload": {}}, headers=headers)
        assert created.status_code == 202, created.text
        message_id = created.json()["id"]
        async with app.state.engine.connect() as holder:
            await holder.execute(text("SELECT 1 FROM messages WHERE id = :id FOR UPDATE"), {"id": message_id})
            started = time.perf_counter()
            response = await client.post(f"/api/v1/messages/{message_id}/redeliver", headers=headers)
            elapsed = time.perf_counter() - started
            await holder.rollback()
        async with app.state.engine.begin() as cleanup:
            await cleanup.execute(text("DELETE FROM messages WHERE id = :id"), {"id": message_id})

    assert_unavailable(response)
    assert elapsed < 3, f"waited {elapsed:.1f}s for the lock"


async def test_an_integrity_error_nobody_expected_stays_a_500(log_lines: list[tuple[str, str]]) -> None:
    async with serve(build_app(db_router)) as client:
        response = await client.get("/test/db/orphan")

    body = assert_problem(response, 500)
    assert body["detail"] == UNEXPECTED_ERROR_DETAIL
    assert "Retry-After" not in response.headers
    assert errors_of(log_lines) == ["Unhandled error"]


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [("57014", True), ("55P03", True), ("53300", True), ("08006", True), ("23505", False), ("42601", False)],
)
def test_sqlstates_that_mean_unavailable(sqlstate: str, unavailable: bool) -> None:
    class DriverError(Exception):
        pass

    orig = DriverError("driver error")
    orig.sqlstate = sqlstate  # type: ignore[attr-defined]
    assert is_database_unavailable(DBAPIError("SELECT 1", None, orig)) is unavailable
    assert is_database_unavailable(IntegrityError("INSERT", None, orig)) is unavailable


def test_an_outage_episode_ends_after_a_quiet_minute(log_lines: list[tuple[str, str]]) -> None:
    now = [0.0]
    outage = OutageLog(OutageEpisodes(quiet_seconds=60, clock=lambda: now[0]))
    for second in (0, 10, 30, 89):  # each within a minute of the one before: one episode
        now[0] = second
        outage.failed(RuntimeError("connection refused"))
    now[0] = 150  # 61 s after the last failure: a new episode
    outage.failed(RuntimeError("connection refused"))

    assert len(errors_of(log_lines)) == 2
