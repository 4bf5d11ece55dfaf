"""Fixtures of the worker tests: a Celery app on the suite's Redis, and real worker processes."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

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
