"""Worker entry point (`celery -A app.celery_worker worker|beat`): per-process setup, then the app.

- `setup_logging`: with a receiver connected, Celery leaves logging alone; ours routes it into Loguru.
- `worker_process_init` (in each pool process, after fork): logging, Sentry, the event loop and a fresh
  connection pool, then tracing (its exporter thread must start in the process that uses it).
- `task_prerun` / `task_postrun`: the request id from the task headers (or a new one) and the task id are
  bound for the task's log lines, and unbound after it.
"""

from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any

from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init
from loguru import logger

from app.celery.utils import init_worker_process
from app.celery_app import REQUEST_ID_TASK_HEADER, celery_app
from app.core.config import get_settings
from app.core.context import request_id_var, resolve_request_id
from app.core.logging import configure_logging
from app.core.sentry import init_sentry
from app.core.telemetry import configure_telemetry

# Per running task id: what task_postrun must undo. Usually one entry; more if a task runs another eagerly.
_task_contexts: dict[str, tuple[Token[str | None], AbstractContextManager[None]]] = {}


@setup_logging.connect
def _on_setup_logging(**_: Any) -> None:
    configure_logging(get_settings())


@worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings)
    init_sentry(settings)
    init_worker_process()
    configure_telemetry(settings)


@task_prerun.connect
def bind_task_context(task_id: str | None = None, task: Task[Any, Any] | None = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    # Validated like an incoming X-Request-ID: it is written into every log line of the task.
    header = getattr(task.request, REQUEST_ID_TASK_HEADER, None)
    request_id = resolve_request_id(header if isinstance(header, str) else None)
    token = request_id_var.set(request_id)
    log_context = logger.contextualize(task_id=task_id, task=task.name)
    log_context.__enter__()
    _task_contexts[task_id] = (token, log_context)


@task_postrun.connect
def unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    entry = _task_contexts.pop(task_id, None) if task_id is not None else None
    if entry is None:
        return
    token, log_context = entry
    log_context.__exit__(None, None, None)
    request_id_var.reset(token)


__all__ = ["celery_app"]
