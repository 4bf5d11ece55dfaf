"""Per task: the request id from the task headers (or a new one) and the task id, bound for its log lines."""

from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any

from celery import Task
from loguru import logger

from app.core.context import request_id_var, resolve_request_id
from app.worker.celery_app import REQUEST_ID_TASK_HEADER

# Per running task id: what task_postrun must undo. Usually one entry; more if a task runs another eagerly.
_task_contexts: dict[str, tuple[Token[str | None], AbstractContextManager[None]]] = {}


def bind_task_context(task_id: str | None = None, task: Task[Any, Any] | None = None, **_: Any) -> None:
    """A `task_prerun` receiver."""
    if task_id is None or task is None:
        return
    # Validated like an incoming X-Request-ID: it is written into every log line of the task.
    header = getattr(task.request, REQUEST_ID_TASK_HEADER, None)
    request_id = resolve_request_id(header if isinstance(header, str) else None)
    token = request_id_var.set(request_id)
    log_context = logger.contextualize(task_id=task_id, task=task.name)
    log_context.__enter__()
    _task_contexts[task_id] = (token, log_context)


def unbind_task_context(task_id: str | None = None, **_: Any) -> None:
    """A `task_postrun` receiver."""
    entry = _task_contexts.pop(task_id, None) if task_id is not None else None
    if entry is None:
        return
    token, log_context = entry
    log_context.__exit__(None, None, None)
    request_id_var.reset(token)
