"""The worker's per-process runtime, in this process: one loop, one engine, tasks run on it, closed at the end."""

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.pool import QueuePool

from app.core.config import Settings
from app.worker import runtime
from app.worker.runtime import WorkerRuntime, run_delivery, start_runtime, stop_runtime
from app.worker.tasks import fan_out_message, purge_deliveries, purge_messages, requeue_stranded, retry_delivery
from tests.support.fakes import RecordingQueue


@pytest.fixture
def started(settings: Settings) -> Iterator[WorkerRuntime]:
    """The runtime a pool process starts (app/worker/main.py), stopped after the test."""
    started = start_runtime(settings, RecordingQueue())
    yield started
    stop_runtime()


# Plain (not async) tests: a task runs the runtime's own loop, as in a Celery pool process, outside any loop.
def test_tasks_run_their_use_case_on_the_runtime(started: WorkerRuntime) -> None:
    missing = str(uuid.uuid4())

    fan_out_message(missing)  # a message that is gone: nothing to do, and no error
    retry_delivery(missing, str(uuid.uuid4()), 2, 5)

    assert requeue_stranded() == 0
    assert purge_deliveries() == 0
    assert purge_messages() == 0
    assert started.queue == RecordingQueue()  # nothing was published
    assert not started.loop.is_closed()


def test_one_loop_and_one_engine_serve_every_task(started: WorkerRuntime) -> None:
    loops = [run_delivery(_running_loop) for _ in range(3)]

    assert loops == [started.loop] * 3
    pool = started.engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 0  # each task's session gave its connection back


async def _running_loop(_: object) -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_starting_again_closes_the_earlier_runtime(settings: Settings) -> None:
    first = start_runtime(settings, RecordingQueue())
    second = start_runtime(settings, RecordingQueue())
    try:
        assert first.loop.is_closed()
        assert runtime._runtime is second
    finally:
        stop_runtime()
    assert second.loop.is_closed()
    assert runtime._runtime is None


def test_a_task_outside_a_started_worker_says_why() -> None:
    stop_runtime()
    with pytest.raises(RuntimeError, match="runtime is not started"):
        purge_deliveries()
