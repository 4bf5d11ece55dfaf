"""Every task name published or scheduled is one a worker registers: a mismatch would drop work silently."""

import inspect
import uuid
from typing import Any

import pytest
from celery import Celery

from app.worker.queue import CeleryDeliveryQueue
from app.worker.tasks import (
    FAN_OUT_TASK,
    PURGE_DELIVERIES_TASK,
    PURGE_MESSAGES_TASK,
    REQUEUE_STRANDED_TASK,
    RETRY_TASK,
)


def test_beat_schedules_registered_tasks_only(celery_app: Celery) -> None:
    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}
    assert scheduled == {REQUEUE_STRANDED_TASK, PURGE_DELIVERIES_TASK, PURGE_MESSAGES_TASK}
    assert scheduled <= set(celery_app.tasks)


async def test_the_queue_publishes_registered_tasks_only(monkeypatch: pytest.MonkeyPatch, celery_app: Celery) -> None:
    published: list[tuple[str, dict[str, Any]]] = []

    def send_task(name: str, **options: Any) -> None:
        published.append((name, options))

    monkeypatch.setattr(celery_app, "send_task", send_task)
    message_id, webhook_id = uuid.uuid4(), uuid.uuid4()
    queue = CeleryDeliveryQueue(celery_app)

    await queue.fan_out(message_id)
    await queue.retry(message_id, webhook_id, 2, 5, 1.5)

    assert published == [
        (FAN_OUT_TASK, {"args": [str(message_id)], "countdown": None}),
        (RETRY_TASK, {"args": [str(message_id), str(webhook_id), 2, 5], "countdown": 1.5}),
    ]
    for name, options in published:
        assert name in celery_app.tasks
        inspect.signature(celery_app.tasks[name].run).bind(*options["args"])  # the arguments the task takes
