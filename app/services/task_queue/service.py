"""DeliveryQueue (app/api/messaging/queue.py) backed by Celery."""

import asyncio
import uuid

from app.celery_app import celery_app
from app.services.task_queue.constants import FAN_OUT_TASK, RETRY_TASK


class CeleryDeliveryQueue:
    async def fan_out(self, message_id: uuid.UUID) -> None:
        await _publish(FAN_OUT_TASK, [str(message_id)])

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await _publish(RETRY_TASK, [str(message_id), str(webhook_id), attempt, last_attempt], countdown=delay)


async def _publish(task: str, args: list[object], countdown: float | None = None) -> None:
    # Publishing is blocking I/O: keep it off the event loop.
    await asyncio.to_thread(celery_app.send_task, task, args=args, countdown=countdown)
