"""The worker: its runtime (one loop, one engine, a deadline per task), the task names, the request id that
travels with a task, the broker's deadlines, and a real worker process running the example task."""

import asyncio
import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from loguru import logger
from redis import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.context import get_request_id, request_id_var
from app.worker.celery_app import REQUEST_ID_TASK_HEADER, create_celery_app
from app.worker.runtime import TaskDeadlineError, WorkerRuntime, run_task, start_runtime, stop_runtime
from app.worker.task_context import bind_task_context, unbind_task_context
from app.worker.tasks import PING_DATABASE_TASK, ping_database
from tests.support.settings import test_settings
from tests.support.worker import DEADLINE_SECONDS, WorkerStarter

QUEUE = "celery"  # Celery's default queue: a Redis list of JSON messages
TIMEOUT = 0.3


@pytest.fixture
def started(settings: Settings) -> Iterator[WorkerRuntime]:
    """The runtime a worker process starts (app/worker/main.py), stopped after the test."""
    started = start_runtime(settings)
    yield started
    stop_runtime()


# Plain (not async) tests: a task runs on the runtime's own loop, as in a Celery pool thread, outside any loop.
def test_the_example_task_runs_on_the_runtime(started: WorkerRuntime) -> None:
    assert ping_database() == 1


def test_starting_again_closes_the_earlier_runtime(settings: Settings) -> None:
    first = start_runtime(settings)
    second = start_runtime(settings)
    try:
        assert first.loop.is_closed()
        assert ping_database() == 1
    finally:
        stop_runtime()
    assert second.loop.is_closed()


def test_a_task_outside_a_started_worker_says_why() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        ping_database()


def test_a_task_past_its_deadline_is_cancelled(settings: Settings) -> None:
    start_runtime(settings.model_copy(update={"CELERY_TASK_TIME_LIMIT_SECONDS": 1}))

    async def too_slow(session: AsyncSession) -> None:
        await asyncio.sleep(30)

    started = time.perf_counter()
    try:
        with pytest.raises(TaskDeadlineError, match="deadline of 1 s"):
            run_task(too_slow)
    finally:
        stop_runtime()
    assert time.perf_counter() - started < 5


def test_the_entry_point_builds_the_worker_app_with_its_tasks() -> None:
    from app.worker import main  # what `celery -A app.worker.main` imports (nothing else may)

    assert PING_DATABASE_TASK in main.celery_app.tasks
    assert main.celery_app.conf.worker_pool == "threads"


def test_beat_schedules_registered_tasks_only(celery_app: Celery) -> None:
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert scheduled == {PING_DATABASE_TASK}
    assert scheduled <= set(celery_app.tasks)


def _take_published(settings: Settings, task_id: str) -> dict[str, Any]:
    """The message with `task_id`, read back from the broker and removed (no worker should run it)."""
    with Redis.from_url(settings.redis_url) as redis:
        for raw in redis.lrange(QUEUE, 0, -1):
            message: dict[str, Any] = json.loads(raw)
            if message["headers"]["id"] == task_id:
                redis.lrem(QUEUE, 1, raw)
                return message
    raise AssertionError(f"task {task_id} is not in the {QUEUE!r} queue")


async def test_a_published_task_carries_the_request_id_of_its_request(settings: Settings, celery_app: Celery) -> None:
    token = request_id_var.set("req-from-api.1")
    try:
        inside = await asyncio.to_thread(celery_app.send_task, PING_DATABASE_TASK)  # to_thread copies the context
    finally:
        request_id_var.reset(token)
    outside = await asyncio.to_thread(celery_app.send_task, PING_DATABASE_TASK)

    assert _take_published(settings, inside.id)["headers"][REQUEST_ID_TASK_HEADER] == "req-from-api.1"
    assert REQUEST_ID_TASK_HEADER not in _take_published(settings, outside.id)["headers"]


@pytest.fixture
def log_records() -> Iterator[list[Any]]:
    records: list[Any] = []
    handler_id = logger.add(lambda message: records.append(message.record), level="DEBUG", format="{message}")
    yield records
    logger.remove(handler_id)


@pytest.mark.parametrize("header", ["req-42", None, "has spaces", "x" * 129])
def test_the_worker_binds_the_request_and_task_ids_for_the_task_only(header: object, log_records: list[Any]) -> None:
    task: Any = SimpleNamespace(name=PING_DATABASE_TASK, request=SimpleNamespace(request_id=header))
    bind_task_context(task_id="task-1", task=task)
    request_id = get_request_id()
    logger.info("inside the task")
    unbind_task_context(task_id="task-1")
    unbind_task_context(task_id="never-bound")

    assert request_id == header if header == "req-42" else request_id is not None and len(request_id) == 32
    assert log_records[0]["extra"]["task_id"] == "task-1"
    assert log_records[0]["extra"]["task"] == PING_DATABASE_TASK
    assert get_request_id() is None


async def test_publishing_to_a_hung_broker_fails_within_its_deadlines(silent_port: int) -> None:
    settings = test_settings(
        REDIS_PORT=silent_port, BROKER_CONNECT_TIMEOUT_SECONDS=TIMEOUT, BROKER_SOCKET_TIMEOUT_SECONDS=TIMEOUT
    )
    celery_app = create_celery_app(settings)

    started = time.perf_counter()
    with pytest.raises(Exception, match="Timeout"):
        await asyncio.wait_for(asyncio.to_thread(celery_app.send_task, PING_DATABASE_TASK), 30)
    elapsed = time.perf_counter() - started

    # Three tries (task_publish_retry_policy), each ended by the socket timeout.
    assert elapsed < 10 * TIMEOUT + 1, f"publishing took {elapsed:.1f}s"


@pytest.mark.e2e
async def test_a_real_worker_runs_the_example_task(worker_starter: WorkerStarter, celery_app: Celery) -> None:
    worker = worker_starter({})
    result = await asyncio.to_thread(celery_app.send_task, PING_DATABASE_TASK)

    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if f"{result.id}] succeeded" in worker.log():
            break
        await asyncio.sleep(0.2)
    assert f"{result.id}] succeeded" in worker.log(), worker.log()
