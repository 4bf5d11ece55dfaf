"""Every task name published or scheduled is one a worker registers: a mismatch would drop work silently."""

import inspect
import uuid
from typing import Any

import pytest

import app.celery.tasks  # noqa: F401 - registers the tasks, as the worker does
from app.celery_app import celery_app
from app.services.task_queue.constants import FAN_OUT_TASK, PURGE_DELIVERIES_TASK, REQUEUE_STRANDED_TASK, RETRY_TASK
from app.services.task_queue.service import CeleryDeliveryQueue


def test_beat_schedules_registered_tasks_only() -> None:
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert scheduled == {REQUEUE_STRANDED_TASK, PURGE_DELIVERIES_TASK}
    assert scheduled <= set(celery_app.tasks)


async def test_the_queue_publishes_registered_tasks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[tuple[str, dict[str, Any]]] = []

    def send_task(name: str, **options: Any) -> None:
        published.append((name, options))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    message_id, webhook_id = uuid.uuid4(), uuid.uuid4()
    queue = CeleryDeliveryQueue()

    await queue.fan_out(message_id)
    await queue.retry(message_id, webhook_id, 2, 5, 1.5)

    assert published == [
        (FAN_OUT_TASK, {"args": [str(message_id)], "countdown": None}),
        (RETRY_TASK, {"args": [str(message_id), str(webhook_id), 2, 5], "countdown": 1.5}),
    ]
    for name, options in published:
        assert name in celery_app.tasks
        inspect.signature(celery_app.tasks[name].run).bind(*options["args"])  # the arguments the task takes
