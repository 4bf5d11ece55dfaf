"""The Celery application, built from the same Settings as the API, with the tasks registered on it."""

from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from app.core.config import Settings
from app.core.context import get_request_id
from app.worker.acks import ConsumingTask
from app.worker.tasks import PING_DATABASE_TASK, register_tasks

# The task message header that carries the X-Request-ID of the API request that enqueued the task.
REQUEST_ID_TASK_HEADER = "request_id"


def create_celery_app(settings: Settings) -> Celery:
    """The Celery app for `settings`: the worker's (app/worker/main.py), and the one a publisher builds.

    Building it connects to nothing; the broker connection opens on the first publish or consume.
    """
    celery_app = Celery(
        settings.APP_NAME,
        broker=settings.redis_url,
        set_as_current=False,
        # Every task's base: an acknowledgement lost with the connection gives its prefetch slot back.
        task_cls=f"{ConsumingTask.__module__}:{ConsumingTask.__name__}",
    )
    celery_app.conf.update(
        # A task is acknowledged only when it finishes, and requeued if its worker dies mid-way:
        # every task is written to be safe to run twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Threads, not processes: each task hands its coroutine to the process's one event loop
        # (app/worker/runtime.py), where the coroutines of many tasks run at once. Task deadlines
        # are enforced there (asyncio.timeout), not by Celery's time limits (prefork only, and a signal).
        worker_pool="threads",
        worker_concurrency=settings.CELERY_CONCURRENCY,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_transport_options={
            # A delayed task (countdown, eta) must not be handed to another worker before it is due.
            "visibility_timeout": settings.celery_visibility_timeout,
            # The only way to give kombu's Redis sockets deadlines (broker_connection_timeout does not reach
            # them): without these, a Redis that accepts connections and never answers hangs a publish in the
            # API and the consumer in the worker for good.
            "socket_connect_timeout": settings.BROKER_CONNECT_TIMEOUT_SECONDS,
            "socket_timeout": settings.BROKER_SOCKET_TIMEOUT_SECONDS,
            # The consumer waits for BRPOP's reply in the event loop, where no socket timeout applies: kombu drops
            # the connection once the reply is this much overdue (a frozen or half-open Redis), and reconnects.
            # redis-py also pings a connection idle for this long before using it.
            "health_check_interval": settings.BROKER_HEALTH_CHECK_INTERVAL_SECONDS,
        },
        broker_connection_retry_on_startup=True,
        # Publishing with Redis down should give up fast.
        broker_connection_timeout=settings.BROKER_CONNECT_TIMEOUT_SECONDS,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            # The example's schedule: replace it with your own housekeeping.
            "ping-database": {"task": PING_DATABASE_TASK, "schedule": settings.CELERY_HOUSEKEEPING_INTERVAL_SECONDS},
        },
    )
    register_tasks(celery_app)
    before_task_publish.connect(_propagate_request_id)  # for every app of the process; connected once
    # The default app in every thread: the API publishes from a worker thread, and the OpenTelemetry Celery
    # instrumentation closes a publish span only for a task the current app knows.
    celery_app.set_default()
    return celery_app


def _propagate_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Carry the request id of the publishing API request (or task) to the task, in its message headers.

    The worker binds it for the task's log lines (app/worker/main.py); the OpenTelemetry Celery
    instrumentation adds the trace context to the same headers.
    """
    request_id = get_request_id()
    if headers is not None and request_id is not None:
        headers.setdefault(REQUEST_ID_TASK_HEADER, request_id)
