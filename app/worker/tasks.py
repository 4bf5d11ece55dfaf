"""Thin tasks: run one delivery use case on the process's runtime, and return. All are safe to run twice.

The task names are written here only: register_tasks() registers the tasks under them, and the beat
schedule (celery_app.py) and the queue (queue.py) refer to them. A task published under a name no worker
registered is silently dropped, so the names must never be spelt twice.
"""

import uuid

from celery import Celery, current_task

from app.worker.housekeeping import run_housekeeping
from app.worker.runtime import run_delivery

FAN_OUT_TASK = "messages.fan_out"
RETRY_TASK = "messages.retry_delivery"
REQUEUE_STRANDED_TASK = "housekeeping.requeue_stranded"
PURGE_DELIVERIES_TASK = "housekeeping.purge_deliveries"
PURGE_MESSAGES_TASK = "housekeeping.purge_messages"


def fan_out_message(message_id: str) -> None:
    redelivered = _redelivered()
    run_delivery(lambda service: service.fan_out(uuid.UUID(message_id), redelivered=redelivered))


def retry_delivery(message_id: str, webhook_id: str, attempt: int, last_attempt: int) -> None:
    run_delivery(lambda service: service.retry(uuid.UUID(message_id), uuid.UUID(webhook_id), attempt, last_attempt))


def requeue_stranded() -> int:
    return run_housekeeping(REQUEUE_STRANDED_TASK, lambda service: service.requeue_stranded())


def purge_deliveries() -> int:
    return run_housekeeping(PURGE_DELIVERIES_TASK, lambda service: service.purge_deliveries())


def purge_messages() -> int:
    return run_housekeeping(PURGE_MESSAGES_TASK, lambda service: service.purge_messages())


def _redelivered() -> bool:
    """Whether the broker handed this task out again because the worker that had it died (or stopped cold)."""
    if not current_task or current_task.request.delivery_info is None:  # called directly, not as a task
        return False
    return bool(current_task.request.delivery_info.get("redelivered"))


def register_tasks(celery_app: Celery) -> None:
    for name, function in (
        (FAN_OUT_TASK, fan_out_message),
        (RETRY_TASK, retry_delivery),
        (REQUEUE_STRANDED_TASK, requeue_stranded),
        (PURGE_DELIVERIES_TASK, purge_deliveries),
        (PURGE_MESSAGES_TASK, purge_messages),
    ):
        # shared=False: registered on this app only, not on every app the process builds.
        celery_app.task(name=name, shared=False)(function)
