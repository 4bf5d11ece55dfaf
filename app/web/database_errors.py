"""Database failures that are not the request's fault: a 503 with Retry-After, logged once per outage.

Connection loss, a pool with no free connection, a statement or lock timeout: the request was fine and will
succeed once the database is back, so the answer is `503 Service Unavailable` with `Retry-After`, not a 500.
During an outage every request fails the same way; logging each at ERROR (each a Sentry event) would bury
the one line that matters, so the first failure of an episode is logged at ERROR and the rest at DEBUG.
Any other database error (an IntegrityError the code did not expect, a syntax error) is a bug: it is passed
on to the last-resort 500 path (app/web/middleware/request_context.py).
"""

from fastapi import FastAPI, Request
from loguru import logger
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from app.core.exceptions import DatabaseUnavailableError
from app.core.outages import OutageEpisodes, root_cause
from app.db.errors import is_database_unavailable
from app.web.problem import problem_response


class OutageLog:
    """Per process: one ERROR line per outage episode (app/core/outages.py). An episode ends only after a quiet
    minute: a success of an unrelated request (one that never touched the database) says nothing about it."""

    def __init__(self, episodes: OutageEpisodes | None = None) -> None:
        self.episodes = episodes or OutageEpisodes()

    def failed(self, exc: BaseException) -> None:
        earlier = self.episodes.failed()
        if earlier == 0:
            # The cause only, no traceback: it is the same for every request and says nothing new.
            logger.error("Database unavailable, answering 503 until it is back: {!r}", root_cause(exc))
        else:
            logger.debug("Database still unavailable ({} failures in this episode): {!r}", earlier, exc)


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
