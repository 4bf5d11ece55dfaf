"""DeliveryQueue backed by Celery: what the services use to schedule background work.

Also the one place the task names are written: app/celery/tasks.py registers the tasks under these
names and app/celery_app.py's beat schedule refers to them. A task published under a name no worker
registered is silently dropped, so the names must never be spelt twice.
"""

import asyncio
import uuid

FAN_OUT_TASK = "messages.fan_out"
RETRY_TASK = "messages.retry_delivery"
REQUEUE_STRANDED_TASK = "housekeeping.requeue_stranded"
PURGE_DELIVERIES_TASK = "housekeeping.purge_deliveries"


class CeleryDeliveryQueue:
    async def fan_out(self, message_id: uuid.UUID) -> None:
        await _publish(FAN_OUT_TASK, [str(message_id)])

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await _publish(RETRY_TASK, [str(message_id), str(webhook_id), attempt, last_attempt], countdown=delay)


async def _publish(task: str, args: list[object], countdown: float | None = None) -> None:
    # Imported here, not at the top: app/celery_app.py imports the task names above from this module.
    from app.celery_app import celery_app

    # Publishing is blocking I/O: keep it off the event loop.
    await asyncio.to_thread(celery_app.send_task, task, args=args, countdown=countdown)
