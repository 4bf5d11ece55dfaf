"""The messaging services' DeliveryQueue (app/api/messaging/queue.py), backed by Celery."""

import asyncio
import contextvars
import functools
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from kombu.exceptions import ChannelError

from app.worker.tasks import FAN_OUT_TASK, RETRY_TASK


class CeleryDeliveryQueue:
    def __init__(self, celery_app: Celery) -> None:
        self.celery_app = celery_app
        # Publishing is blocking I/O: off the event loop, in threads of its own, so that a stalled broker
        # holds up only publishes, never the loop's default executor (DNS lookups, other to_thread calls).
        # Four, not one: each publish waits for the GIL after every socket call while the loop is busy, and a
        # single thread fell behind a loaded API (publishes queued past their deadline, left to housekeeping).
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="celery-publish")

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
        # In the caller's context, as asyncio.to_thread would: the request id and trace reach the task headers.
        send = functools.partial(self.celery_app.send_task, task, args=args, countdown=countdown)
        await asyncio.get_running_loop().run_in_executor(self._executor, contextvars.copy_context().run, send)
