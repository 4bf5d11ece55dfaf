import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.db import engine as engine_module
from app.db.engine import create_engine, create_read_session_factory, create_session_factory
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
