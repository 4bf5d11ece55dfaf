"""Worker entry point (`celery -A app.celery_worker worker|beat`): per-process setup, then the app."""

from typing import Any

from celery.signals import worker_process_init

from app.celery.utils import init_worker_process
from app.celery_app import celery_app


@worker_process_init.connect
def _on_worker_process_init(**_: Any) -> None:
    init_worker_process()


__all__ = ["celery_app"]
