"""The messaging services' DeliveryQueue (app/api/messaging/queue.py), backed by Celery."""

import asyncio
import uuid

from celery import Celery

from app.worker.tasks import FAN_OUT_TASK, RETRY_TASK


class CeleryDeliveryQueue:
    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app

    async def fan_out(self, message_id: uuid.UUID) -> None:
        await self._publish(FAN_OUT_TASK, [str(message_id)])

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await self._publish(RETRY_TASK, [str(message_id), str(webhook_id), attempt, last_attempt], countdown=delay)

    async def _publish(self, task: str, args: list[object], countdown: float | None = None) -> None:
        # Publishing is blocking I/O: keep it off the event loop.
        await asyncio.to_thread(self.celery_app.send_task, task, args=args, countdown=countdown)
