"""Thin tasks: open a session, call a service, return. All of them are safe to run twice."""

import uuid

from app.celery.utils import delivery_service, run_async
from app.celery_app import celery_app
from app.services.task_queue.constants import FAN_OUT_TASK, PURGE_DELIVERIES_TASK, REQUEUE_STRANDED_TASK, RETRY_TASK


async def _fan_out(message_id: uuid.UUID) -> None:
    async with delivery_service() as service:
        await service.fan_out(message_id)


async def _retry(message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int) -> None:
    async with delivery_service() as service:
        await service.retry(message_id, webhook_id, attempt, last_attempt)


async def _requeue_stranded() -> int:
    async with delivery_service() as service:
        return await service.requeue_stranded()


async def _purge_deliveries() -> int:
    async with delivery_service() as service:
        return await service.purge_deliveries()


@celery_app.task(name=FAN_OUT_TASK)
def fan_out_message(message_id: str) -> None:
    run_async(_fan_out(uuid.UUID(message_id)))


@celery_app.task(name=RETRY_TASK)
def retry_delivery(message_id: str, webhook_id: str, attempt: int, last_attempt: int) -> None:
    run_async(_retry(uuid.UUID(message_id), uuid.UUID(webhook_id), attempt, last_attempt))


@celery_app.task(name=REQUEUE_STRANDED_TASK)
def requeue_stranded() -> int:
    return run_async(_requeue_stranded())


@celery_app.task(name=PURGE_DELIVERIES_TASK)
def purge_deliveries() -> int:
    return run_async(_purge_deliveries())
