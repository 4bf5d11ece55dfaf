"""The async engine and its session factories, built from Settings by whoever runs the process.

The API builds them in its lifespan (app/main.py), the worker in each process's start-up
(app/worker/runtime.py); nothing here connects or is built at import.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.core.config import Settings
from app.db.pool import FairAsyncQueuePool

SessionFactory = async_sessionmaker[AsyncSession]
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}

# A pooled connection left unused this long is pinged before it is handed out, so one the server or a
# firewall closed meanwhile is replaced instead of failing a request. One in steady use is not: a ping is
# up to three round trips (BEGIN, ping, ROLLBACK), as many as the request's own work.
PING_AFTER_IDLE_SECONDS = 10.0
_RETURNED_AT = "returned_at"  # key in each pool entry's info: when it was last checked in


# The client-side deadline of a statement is the server's plus this: the server's statement_timeout
# answers first while it is reachable; this one ends the wait when no answer can come (a network outage).
CLIENT_DEADLINE_MARGIN_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """The deadlines of every connection of an engine, in seconds; 0 turns a server-side one off."""

    connect: float
    statement: float
    lock: float
    idle_in_transaction: float

    @classmethod
    def for_api(cls, settings: Settings) -> "DatabaseTimeouts":
        return cls(
            connect=settings.DB_CONNECT_TIMEOUT_SECONDS,
            statement=settings.DB_STATEMENT_TIMEOUT_SECONDS,
            lock=settings.DB_LOCK_TIMEOUT_SECONDS,
            idle_in_transaction=settings.DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
        )

    @classmethod
    def for_worker(cls, settings: Settings) -> "DatabaseTimeouts":
        return cls(
            connect=settings.DB_CONNECT_TIMEOUT_SECONDS,
            statement=settings.WORKER_DB_STATEMENT_TIMEOUT_SECONDS,
            lock=settings.WORKER_DB_LOCK_TIMEOUT_SECONDS,
            idle_in_transaction=settings.WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
        )

    def connect_args(self) -> dict[str, Any]:
        """asyncpg's connect() arguments: the server enforces the three session settings (in milliseconds)."""
        return {
            "timeout": self.connect,
            "command_timeout": self.statement + CLIENT_DEADLINE_MARGIN_SECONDS if self.statement else None,
            "server_settings": {
                "statement_timeout": _milliseconds(self.statement),
                "lock_timeout": _milliseconds(self.lock),
                "idle_in_transaction_session_timeout": _milliseconds(self.idle_in_transaction),
            },
        }


def create_engine(settings: Settings, timeouts: DatabaseTimeouts | None = None) -> AsyncEngine:
    """The engine for `settings`, with the API's deadlines unless `timeouts` says otherwise (the worker's)."""
    timeouts = timeouts or DatabaseTimeouts.for_api(settings)
    engine = create_async_engine(
        settings.database_url,
        poolclass=FairAsyncQueuePool,  # first come, first served under load (app/db/pool.py)
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        connect_args=timeouts.connect_args(),
        # Statement parameters are client data (payloads, secrets): keep them out of error messages,
        # logs and Sentry, except when debugging locally on purpose.
        hide_parameters=settings.LOG_LEVEL.upper() != "DEBUG",
    )
    _raise_driver_failures_as_operational_errors(engine)
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
        cause: Exception | None = None
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            alive, cause = False, exc
        if not alive:
            # The pool replaces this connection with a new one and hands that out instead.
            raise DisconnectionError("A pooled connection failed its ping after being idle.") from cause

    event.listen(pool, "checkin", returned)
    event.listen(pool, "checkout", checked_out)


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: services return models after commit without lazy reloads.
    return async_sessionmaker(engine, expire_on_commit=False)


class ReadSessionFactory:
    """Sessions whose statements each run in autocommit: no BEGIN and ROLLBACK around a read (two round trips).

    For requests that only read. Under PostgreSQL's READ COMMITTED every statement sees a snapshot of its
    own, inside a transaction or not, so reads see the same rows either way. Writes made in such a session
    are committed one statement at a time: never use one for a use case that writes.

    `async with factory() as session:` checks a connection out at once and sets its isolation level to
    AUTOCOMMIT (put back as it returns to the pool). Not through a sessionmaker bound to
    `engine.execution_options(isolation_level="AUTOCOMMIT")`, SQLAlchemy's recipe: that option engine switches
    the level in an engine_connect listener, and its connections look their events up through a dispatcher
    joined to the engine's on every statement; a GET by id cost 5 % more instructions (docs/decisions.md).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            await session.connection(execution_options=_AUTOCOMMIT)
            yield session


def create_read_session_factory(engine: AsyncEngine) -> ReadSessionFactory:
    return ReadSessionFactory(engine)


def _raise_driver_failures_as_operational_errors(engine: AsyncEngine) -> None:
    """A failed connect and a client-side deadline reach the caller as OperationalError, like every other
    failure of the database: asyncpg raises them as its own errors or plain OSError / TimeoutError, which
    SQLAlchemy passes through, and which would otherwise look like any bug."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Dialect, _: ConnectionPoolEntry, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise OperationalError("connect", None, exc) from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def timed_out(context: ExceptionContext) -> BaseException | None:
        if isinstance(context.original_exception, TimeoutError):
            return OperationalError(context.statement, None, context.original_exception)
        return None

    # The idle-connection ping (at checkout) passes a TimeoutError through too. A ping past the deadline means the
    # connection is gone: answering False makes the pool drop its connections and connect afresh, which
    # fails within the connect timeout, as OperationalError, while the database stays unreachable.
    dialect = engine.sync_engine.dialect
    ping = dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            return ping(dbapi_connection)
        except TimeoutError:
            return False

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def _milliseconds(seconds: float) -> str:
    return str(round(seconds * 1000))
