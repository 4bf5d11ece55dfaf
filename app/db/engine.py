"""The async engine and its session factories, built from Settings by whoever runs the process.

The API builds them in its lifespan (app/main.py), the worker in each process's start-up
(app/worker/runtime.py); nothing here connects or is built at import.
"""

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.core.config import Settings
from app.db.pool import FairAsyncQueuePool

SessionFactory = async_sessionmaker[AsyncSession]

# A pooled connection left unused this long is pinged before it is handed out, so one the server or a
# firewall closed meanwhile is replaced instead of failing a request. One in steady use is not: a ping is
# up to three round trips (BEGIN, ping, ROLLBACK), as many as the request's own work.
PING_AFTER_IDLE_SECONDS = 10.0
_RETURNED_AT = "returned_at"  # key in each pool entry's info: when it was last checked in


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        poolclass=FairAsyncQueuePool,  # first come, first served under load (app/db/pool.py)
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        # Statement parameters are client data (payloads, secrets): keep them out of error messages,
        # logs and Sentry, except when debugging locally on purpose.
        hide_parameters=settings.LOG_LEVEL.upper() != "DEBUG",
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """pool_pre_ping, but only for connections idle longer than PING_AFTER_IDLE_SECONDS."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    def returned(_: Any, entry: ConnectionPoolEntry) -> None:
        entry.info[_RETURNED_AT] = time.monotonic()

    def checked_out(dbapi_connection: Any, entry: ConnectionPoolEntry, _: PoolProxiedConnection) -> None:
        returned_at = entry.info.get(_RETURNED_AT)  # None on a new connection (an invalidated one's info is cleared)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool replaces this connection with a new one and hands that out instead.
            raise DisconnectionError("A pooled connection failed its ping after being idle.") from exc

    event.listen(pool, "checkin", returned)
    event.listen(pool, "checkout", checked_out)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: services return models after commit without lazy reloads.
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions whose statements each run in autocommit: no BEGIN and ROLLBACK around a read (two round trips).

    For requests that only read. Under PostgreSQL's READ COMMITTED every statement sees a snapshot of its
    own, inside a transaction or not, so reads see the same rows either way. Writes made in such a session
    are committed one statement at a time: never use one for a use case that writes.
    """
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
