"""The Celery application, configured from the same Settings as the API."""

from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from app.core.config import get_settings
from app.core.context import get_request_id
from app.services.task_queue.constants import PURGE_DELIVERIES_TASK, REQUEUE_STRANDED_TASK

# The task message header that carries the X-Request-ID of the API request that enqueued the task.
REQUEST_ID_TASK_HEADER = "request_id"

settings = get_settings()

celery_app = Celery(settings.APP_NAME, broker=settings.redis_url, include=["app.celery.tasks"])
celery_app.conf.update(
    # A task is acknowledged only when it finishes, and requeued if its worker dies mid-way:
    # every task is written to be safe to run twice.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_time_limit=settings.CELERY_TASK_TIME_LIMIT_SECONDS,
    task_soft_time_limit=max(1, settings.CELERY_TASK_TIME_LIMIT_SECONDS - 10),
    # Retries are delayed tasks; Redis must not hand them to another worker before they are due.
    broker_transport_options={"visibility_timeout": settings.celery_visibility_timeout},
    broker_connection_retry_on_startup=True,
    # The API publishes inline; with Redis down it should give up fast (the message stays pending).
    broker_connection_timeout=2,
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    timezone="UTC",
    enable_utc=True,
    beat_schedule={
        "requeue-stranded": {
            "task": REQUEUE_STRANDED_TASK,
            "schedule": settings.CELERY_HOUSEKEEPING_INTERVAL_SECONDS,
        },
        "purge-deliveries": {"task": PURGE_DELIVERIES_TASK, "schedule": 3600.0},
    },
)


@before_task_publish.connect
def _propagate_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Carry the request id of the publishing API request (or task) to the task, in its message headers.

    The worker binds it for the task's log lines (app/celery_worker.py); the OpenTelemetry Celery
    instrumentation adds the trace context to the same headers.
    """
    request_id = get_request_id()
    if headers is not None and request_id is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)
