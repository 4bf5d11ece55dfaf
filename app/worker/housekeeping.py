"""Housekeeping runs (re-queue stranded work, purges): while PostgreSQL is down a run is skipped, said once.

Beat sends each housekeeping task every CELERY_HOUSEKEEPING_INTERVAL_SECONDS. While the database is down every
run fails the same way, and Celery would log each one at ERROR with its traceback: three Sentry events a
minute for one outage. A run that finds the database unavailable (app/db/errors.py) ends as ignored instead
(Celery says so at INFO); the first of an outage is logged at ERROR with its cause, the next ones at DEBUG,
and the first run that works again says so at INFO. Skipping loses nothing: the next run does the work. Any
other error is a bug and fails the task as before.
"""

from collections.abc import Awaitable, Callable

from celery.exceptions import Ignore
from loguru import logger

from app.api.messaging.delivery_service import DeliveryService
from app.core.outages import OutageEpisodes, root_cause
from app.db.errors import is_database_unavailable
from app.worker.runtime import run_delivery

# Per process, for every housekeeping task: they fail together, for the same reason.
_outage = OutageEpisodes()


def run_housekeeping(name: str, use_case: Callable[[DeliveryService], Awaitable[int]]) -> int:
    """Run one housekeeping use case on the process's runtime (run_delivery); skip it while the database is down."""
    try:
        done = run_delivery(use_case)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        if _outage.failed() == 0:
            logger.error(
                "Housekeeping cannot reach the database; its runs are skipped until it is back (the next ones"
                " are logged at DEBUG): {} failed with {!r}",
                name,
                root_cause(exc),
            )
        else:
            logger.debug("Housekeeping skipped: {} cannot reach the database either: {!r}", name, root_cause(exc))
        raise Ignore from exc
    if skipped := _outage.succeeded():
        logger.info("Housekeeping reaches the database again; {} runs were skipped meanwhile", skipped)
    return done
