import time
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.db.engine import CLIENT_DEADLINE_MARGIN_SECONDS, DatabaseTimeouts, create_engine
from app.db.message.table import MessagesTable
from app.web.database_errors import is_database_unavailable
from tests.support.settings import test_settings


def test_statement_parameters_stay_out_of_errors_and_logs_unless_debugging() -> None:
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="INFO")).sync_engine.hide_parameters is True
    assert create_engine(Settings(_env_file=None, LOG_LEVEL="debug")).sync_engine.hide_parameters is False


def test_pool_comes_from_settings() -> None:
    engine = create_engine(Settings(_env_file=None, DB_POOL_SIZE=3, DB_MAX_OVERFLOW=1))
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow) == (3, 1)  # type: ignore[attr-defined]
    assert engine.sync_engine.pool._pre_ping is True


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
