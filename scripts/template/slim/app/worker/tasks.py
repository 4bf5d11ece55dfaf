"""Thin tasks: each runs one use case on the process's runtime, and returns. All must be safe to run twice.

The task names are written here only: register_tasks() registers the tasks under them, and the beat
schedule (celery_app.py) and publishers refer to them. A task published under a name no worker registered
is silently dropped, so the names must never be spelt twice.
"""

from celery import Celery
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.worker.runtime import run_task

PING_DATABASE_TASK = "housekeeping.ping_database"


async def _ping(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT 1"))).scalar_one())


def ping_database() -> int:
    """The example task: one query on the worker's engine (replace it with your own use cases)."""
    return run_task(_ping)


def register_tasks(celery_app: Celery) -> None:
    for name, function in ((PING_DATABASE_TASK, ping_database),):
        # shared=False: registered on this app only, not on every app the process builds.
        celery_app.task(name=name, shared=False)(function)
