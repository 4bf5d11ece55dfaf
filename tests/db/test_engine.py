import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.db import engine as engine_module
from app.db.engine import (
    CLIENT_DEADLINE_MARGIN_SECONDS,
    DatabaseTimeouts,
    create_engine,
    create_read_session_factory,
    create_session_factory,
)
from app.db.errors import is_database_unavailable
from app.db.message.table import MessagesTable
from tests.support.settings import test_settings


def test_statement_parameters_stay_out_of_errors_and_logs_unless_debugging() -> None:
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="INFO")).sync_engine.hide_parameters is True
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="debug")).sync_engine.hide_parameters is False


def test_pool_comes_from_settings() -> None:
    engine = create_engine(Settings(_env_file=None, DB_POOL_SIZE=3, DB_MAX_OVERFLOW=1, DB_POOL_TIMEOUT_SECONDS=2.5))
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 1, 2.5)  # type: ignore[attr-defined]
    # Not on every checkout: idle connections only (below).
    assert pool._pre_ping is False


def test_the_default_pool_is_fixed_in_size() -> None:
    """No overflow by default: a connection opened beyond the pool would be closed again at once, per request."""
    settings = Settings(_env_file=None)
    assert (settings.DB_POOL_SIZE, settings.DB_MAX_OVERFLOW) == (10, 0)


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(engine: AsyncEngine, pid: int) -> None:
    # From a connection outside the pool under test: it has only one.
    other = create_engine(test_settings())
    try:
        async with other.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


async def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced_when_dead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = create_engine(test_settings(DB_POOL_SIZE=1))
    try:
        pid = await _backend_pid(engine)
        await _terminate(engine, pid)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every returned connection is idle

        assert await _backend_pid(engine) != pid  # the ping found it dead: a new connection answered
    finally:
        await engine.dispose()


async def test_a_connection_in_steady_use_is_not_pinged() -> None:
    engine = create_engine(test_settings(DB_POOL_SIZE=1))
    try:
        pid = await _backend_pid(engine)
        await _terminate(engine, pid)

        with pytest.raises(DBAPIError):  # no ping in between: the request itself meets the dead connection
            await _backend_pid(engine)
        assert await _backend_pid(engine) != pid  # and the pool replaced it for the next one
    finally:
        await engine.dispose()


async def _in_transaction(session: AsyncSession) -> bool:
    await session.execute(text("SELECT 1"))
    raw = await (await session.connection()).get_raw_connection()
    return bool(raw.driver_connection.is_in_transaction())  # type: ignore[union-attr]


async def test_read_sessions_run_without_a_transaction_and_others_within_one(engine: AsyncEngine) -> None:
    async with create_read_session_factory(engine)() as session:
        assert await _in_transaction(session) is False
    async with create_session_factory(engine)() as session:
        assert await _in_transaction(session) is True
    # The read sessions' autocommit does not stay on the pooled connection they used.
    async with create_session_factory(engine)() as session:
        assert await _in_transaction(session) is True


SESSION_TIMEOUTS = text(
    "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
    " current_setting('idle_in_transaction_session_timeout')"
)


@pytest.mark.parametrize(
    ("timeouts", "expected"),
    [(DatabaseTimeouts.for_api, ("7s", "1500ms", "25s")), (DatabaseTimeouts.for_worker, ("45s", "4s", "50s"))],
)
async def test_every_connection_has_the_deadlines_of_its_process(timeouts: object, expected: tuple[str, ...]) -> None:
    settings = test_settings(
        DB_STATEMENT_TIMEOUT_SECONDS=7,
        DB_LOCK_TIMEOUT_SECONDS=1.5,
        DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS=25,
        WORKER_DB_STATEMENT_TIMEOUT_SECONDS=45,
        WORKER_DB_LOCK_TIMEOUT_SECONDS=4,
        WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS=50,
    )
    assert callable(timeouts)
    engine = create_engine(settings, timeouts(settings))
    try:
        async with engine.connect() as connection:
            shown = tuple((await connection.execute(SESSION_TIMEOUTS)).one())
    finally:
        await engine.dispose()

    assert shown == expected


def test_the_client_waits_a_little_longer_than_the_server_and_zero_turns_a_deadline_off() -> None:
    on = DatabaseTimeouts(connect=5, statement=10, lock=3, idle_in_transaction=30).connect_args()
    off = DatabaseTimeouts(connect=5, statement=0, lock=0, idle_in_transaction=0).connect_args()

    assert on["command_timeout"] == 10 + CLIENT_DEADLINE_MARGIN_SECONDS
    assert on["timeout"] == 5
    assert off["command_timeout"] is None
    assert set(off["server_settings"].values()) == {"0"}  # PostgreSQL's "no limit"


async def test_messages_lock_waits_no_longer_than_the_lock_timeout() -> None:
    engine = create_engine(test_settings(DB_LOCK_TIMEOUT_SECONDS=0.2))
    try:
        async with engine.connect() as holder, AsyncSession(engine) as session:
            await holder.execute(text("LOCK TABLE messages IN EXCLUSIVE MODE"))  # no row lock can be taken
            started = time.perf_counter()
            with pytest.raises(DBAPIError) as raised:
                await MessagesTable(session).lock(uuid.uuid4())
            elapsed = time.perf_counter() - started
            await holder.rollback()
    finally:
        await engine.dispose()

    assert getattr(raised.value.orig, "sqlstate", None) == "55P03"  # lock_not_available
    assert is_database_unavailable(raised.value)
    assert elapsed < 2


async def test_a_database_that_accepts_and_never_answers_fails_within_the_connect_timeout(silent_port: int) -> None:
    engine = create_engine(test_settings(DB_HOST="127.0.0.1", DB_PORT=silent_port, DB_CONNECT_TIMEOUT_SECONDS=0.3))
    started = time.perf_counter()
    try:
        with pytest.raises(OperationalError):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()

    assert time.perf_counter() - started < 2
