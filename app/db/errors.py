"""Which database errors mean "the database cannot serve this now" rather than "the code or the input is wrong".

The API answers the first kind with 503 (app/web/database_errors.py) and the worker's housekeeping skips a run
on it (app/worker/housekeeping.py); the second kind is a bug and stays loud.
"""

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# SQLSTATE classes and codes meaning "the server cannot serve this now": connection exceptions (08),
# insufficient resources (53: too many connections, out of memory, disk full), operator intervention (57:
# statement_timeout's query_canceled, shutdowns, cannot_connect_now), system errors (58), lock_timeout's
# lock_not_available (55P03) and the idle-in-transaction timeout (25P03).
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})
UNAVAILABLE_SQLSTATES = frozenset({"55P03", "25P03"})


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
