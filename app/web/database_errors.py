"""Database failures that are not the request's fault: a 503 with Retry-After, logged once per outage.

Connection loss, a pool with no free connection, a statement or lock timeout: the request was fine and will
succeed once the database is back, so the answer is `503 Service Unavailable` with `Retry-After`, not a 500.
During an outage every request fails the same way; logging each at ERROR (each a Sentry event) would bury
the one line that matters, so the first failure of an episode is logged at ERROR and the rest at DEBUG.
Any other database error (an IntegrityError the code did not expect, a syntax error) is a bug: it is passed
on to the last-resort 500 path (app/web/middleware/request_context.py).
"""

import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from loguru import logger
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import Response

from app.core.exceptions import DatabaseUnavailableError
from app.web.problem import problem_response

# SQLSTATE classes and codes meaning "the server cannot serve this now": connection exceptions (08),
# insufficient resources (53: too many connections, out of memory, disk full), operator intervention (57:
# statement_timeout's query_canceled, shutdowns, cannot_connect_now), system errors (58), lock_timeout's
# lock_not_available (55P03) and the idle-in-transaction timeout (25P03).
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
UNAVAILABLE_SQLSTATES = frozenset({"55P03", "25P03"})
# Failures closer together than this belong to one outage episode.
EPISODE_QUIET_SECONDS = 60.0


def is_database_unavailable(exc: BaseException) -> bool:
    """True for an error that says the database cannot serve requests now, rather than that the code or the
    request is wrong."""
    if isinstance(exc, PoolTimeoutError):  # every connection of the pool is busy
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # OperationalError: failed connects and client-side deadlines (app/db/engine.py), and the disconnects
    # other drivers report.
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or "")
    return sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES or sqlstate in UNAVAILABLE_SQLSTATES


class OutageLog:
    """Per process: one ERROR line per outage episode. An episode starts with the first failure after
    `quiet_seconds` without one, and goes on while failures keep coming closer together than that."""

    def __init__(self, quiet_seconds: float = EPISODE_QUIET_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.quiet_seconds = quiet_seconds
        self.clock = clock
        self._last_failure = float("-inf")
        self._failures = 0

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        if now - self._last_failure >= self.quiet_seconds:
            self._failures = 0
            # The cause only, no traceback: it is the same for every request and says nothing new.
            logger.error("Database unavailable, answering 503 until it is back: {!r}", _root_cause(exc))
        else:
            logger.debug("Database still unavailable ({} failures in this episode): {!r}", self._failures, exc)
        self._failures += 1
        self._last_failure = now


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


async def database_error_handler(request: Request, exc: Exception) -> Response:
    if not is_database_unavailable(exc):
        raise exc  # a bug: the request-context middleware logs it once and answers 500
    outage_log: OutageLog = request.app.state.database_outage_log
    outage_log.failed(exc)
    error = DatabaseUnavailableError()
    return problem_response(error.status_code, error.detail, title=error.title, headers=error.headers)


def register_database_error_handler(app: FastAPI) -> None:
    app.state.database_outage_log = OutageLog()
    # A pool timeout is not an outage of the database (its connections are all busy): errors.py answers it.
    app.add_exception_handler(DBAPIError, database_error_handler)
