"""The API's DeliveryQueue: each publish is handed to a background task, and the request goes on at once.

A message is committed (status pending) before it is published, so its row is the durable record and
housekeeping re-queues every message still pending after MESSAGE_REQUEUE_AFTER_SECONDS (a redelivery's retries
are marked due the same way). A request therefore never waits for the broker: it hands the publish off and
answers. Each publish gets `deadline` seconds; one that fails, or still waits when the deadline passes (a broker
that accepts connections and never answers), is abandoned and left to housekeeping. At most `max_pending`
publishes wait at once; beyond that new ones are left to housekeeping straight away, so a broker outage under
load costs neither time nor memory.
"""

import asyncio
import time
import uuid
from collections.abc import Coroutine
from typing import Any

from loguru import logger

from app.api.messaging.queue import DeliveryQueue

PUBLISH_DEADLINE_SECONDS = 5.0
MAX_PENDING_PUBLISHES = 1000
# During an outage every publish fails: say so at most this often per process, with the count.
FAILURE_WARNING_INTERVAL_SECONDS = 60.0


class HandOffQueue:
    def __init__(
        self,
        queue: DeliveryQueue,
        *,
        deadline: float = PUBLISH_DEADLINE_SECONDS,
        max_pending: int = MAX_PENDING_PUBLISHES,
    ) -> None:
        self.queue = queue
        self.deadline = deadline
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = float("-inf")
        self._unreported = 0

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def fan_out(self, message_id: uuid.UUID) -> None:
        self._hand_off(self.queue.fan_out(message_id), f"message {message_id}")

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        publish = self.queue.retry(message_id, webhook_id, attempt, last_attempt, delay)
        self._hand_off(publish, f"attempt {attempt} of message {message_id} to webhook {webhook_id}")

    async def aclose(self) -> None:
        """Give the publishes in flight their deadline to finish (at shutdown), then abandon the rest."""
        if not self._tasks:
            return
        await asyncio.wait(set(self._tasks), timeout=self.deadline)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _hand_off(self, publish: Coroutine[Any, Any, None], what: str) -> None:
        if len(self._tasks) >= self.max_pending:
            publish.close()  # never started
            self._failed(what, f"{self.max_pending} publishes are already waiting for the broker")
            return
        # The task runs in a copy of the request's context: the request id and trace reach the task headers.
        task = asyncio.create_task(self._publish(publish, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, publish: Coroutine[Any, Any, None], what: str) -> None:
        try:
            async with asyncio.timeout(self.deadline):
                await publish
        except TimeoutError:
            self._failed(what, f"no answer from the broker within {self.deadline:g} s")
        except Exception as exc:
            self._failed(what, repr(exc))

    def _failed(self, what: str, reason: str) -> None:
        self._unreported += 1
        now = time.monotonic()
        if now - self._warned_at < FAILURE_WARNING_INTERVAL_SECONDS:
            return
        others = f" (and {self._unreported - 1} more since the last warning)" if self._unreported > 1 else ""
        logger.warning("Could not enqueue {}{}; housekeeping will re-queue it: {}", what, others, reason)
        self._warned_at, self._unreported = now, 0
