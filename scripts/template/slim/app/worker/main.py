"""The worker's composition root, which Celery's CLI loads: `celery -A app.worker.main worker|beat`.

Celery's CLI takes an app object, not a factory, so this module (and only this one, which nothing else
imports) builds the Celery app from the environment's Settings when it is imported. Then, by signal:

- `setup_logging`: with a receiver connected, Celery leaves logging alone; ours routes it into Loguru.
- `worker_init` (in the worker process, before its pool starts): logging, Sentry, tracing, then the
  process's runtime: event loop thread and engine. The pool is
  Celery's threads pool (celery_app.py), so there is no pool process and no `worker_process_init`.
- `worker_shutdown`: the runtime is closed (after the pool has finished its tasks).
- `task_prerun` / `task_postrun`: the task's request id and task id bound for its log lines, and unbound.
"""

from typing import Any

from celery.signals import setup_logging, task_postrun, task_prerun, worker_init, worker_shutdown

from app.core.config import get_settings
from app.core.logging import configure_logging
from app.core.sentry import init_sentry
from app.core.telemetry import configure_telemetry, instrument_engine
from app.worker.celery_app import create_celery_app
from app.worker.runtime import start_runtime, stop_runtime
from app.worker.task_context import bind_task_context, unbind_task_context

settings = get_settings()
celery_app = create_celery_app(settings)


@setup_logging.connect
def _on_setup_logging(**_: Any) -> None:
    configure_logging(settings)


@worker_init.connect
def _on_worker_init(**_: Any) -> None:
    configure_logging(settings)
    init_sentry(settings)
    configure_telemetry(settings)
    runtime = start_runtime(settings)
    instrument_engine(runtime.engine)


@worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    stop_runtime()


task_prerun.connect(bind_task_context)
task_postrun.connect(unbind_task_context)

__all__ = ["celery_app"]
