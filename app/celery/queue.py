"""DeliveryQueue backed by Celery: what the services use to schedule background work."""

import asyncio
import uuid

from app.celery_app import celery_app

FAN_OUT_TASK = "messages.fan_out"
RETRY_TASK = "messages.retry_delivery"


class CeleryDeliveryQueue:
    async def fan_out(self, message_id: uuid.UUID) -> None:
        # Publishing is blocking I/O: keep it off the event loop.
        await asyncio.to_thread(celery_app.send_task, FAN_OUT_TASK, args=[str(message_id)])

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        args = [str(message_id), str(webhook_id), attempt, last_attempt]
        await asyncio.to_thread(celery_app.send_task, RETRY_TASK, args=args, countdown=delay)
