"""Fixtures of the worker tests: a Celery app on the suite's Redis, real worker processes, and the tables they
read emptied after a test that committed to them."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core.config import Settings
from app.worker.celery_app import create_celery_app
from tests.support.worker import Worker, WorkerStarter, start_worker


@pytest.fixture(scope="session")
def celery_app(settings: Settings) -> Celery:
    return create_celery_app(settings)


@pytest.fixture
def worker_starter(settings: Settings, celery_app: Celery, tmp_path: Path) -> Iterator[WorkerStarter]:
    """Starts worker processes with extra environment variables; stops them after the test."""
    started: list[Worker] = []

    def start(overrides: dict[str, str]) -> Worker:
        # Tasks an earlier, interrupted run left in this Redis database would be consumed first.
        celery_app.control.purge()
        started.append(start_worker(settings, tmp_path / f"worker-{len(started)}.log", **overrides))
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
async def truncate_after(engine: AsyncEngine) -> AsyncIterator[None]:
    """For a test whose API commits for real (the worker is another process and must see the rows)."""
    yield
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE deliveries, messages, webhooks"))


@pytest.fixture
async def committing_session(engine: AsyncEngine, truncate_after: None) -> AsyncIterator[AsyncSession]:
    """A session whose commits are real, for rows a worker runtime must see; the tables are emptied after."""
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session
