"""The messaging services' DeliveryQueue (app/api/messaging/queue.py), backed by Celery."""

import asyncio
import uuid
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

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

    async def backlog(self) -> int:
        """How many tasks wait in the broker's default queue (not counting those workers have taken)."""

        def size() -> int:
            with self.celery_app.connection_for_read() as connection:
                channel: Any = connection.default_channel  # the stubs lack queue_declare; every transport has it
                try:
                    declared = channel.queue_declare(queue=self.celery_app.conf.task_default_queue, passive=True)
                except ChannelError:  # no such queue (Redis drops an empty one): nothing waits in it
                    return 0
                return int(declared.message_count)

        return await asyncio.to_thread(size)

    async def _publish(self, task: str, args: list[object], countdown: float | None = None) -> None:
        # Publishing is blocking I/O: keep it off the event loop.
        await asyncio.to_thread(self.celery_app.send_task, task, args=args, countdown=countdown)
