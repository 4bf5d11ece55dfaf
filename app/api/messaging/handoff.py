"""The API's DeliveryQueue: each publish is handed to a background task, and the request goes on at once.

A message is committed (status pending) before it is published, so its row is the durable record and
housekeeping re-queues every message still pending after MESSAGE_REQUEUE_AFTER_SECONDS (a redelivery's retries
are marked due the same way). A request therefore never waits for the broker: it hands the publish off and
answers. Each publish gets `deadline` seconds; one that fails, or still waits when the deadline passes (a broker
that accepts connections and never answers), is abandoned and left to housekeeping. At most `max_pending`
publishes wait at once; beyond that new ones are left to housekeeping straight away, so a broker outage under
load costs neither time nor memory. An outage is logged once (app/core/outages.py): its first failure at
WARNING, the next ones at DEBUG, and its end, at the next publish that goes through, at INFO with the count.
"""

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

from loguru import logger

from app.api.messaging.queue import DeliveryQueue
from app.core.outages import OutageEpisodes

PUBLISH_DEADLINE_SECONDS = 5.0
MAX_PENDING_PUBLISHES = 1000


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
        self.outage = OutageEpisodes()  # of the broker, as publishing meets it

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
        else:
            if failures := self.outage.succeeded():
                logger.info("Publishing works again; {} publishes failed meanwhile, left to housekeeping", failures)

    def _failed(self, what: str, reason: str) -> None:
        if self.outage.failed() == 0:
            logger.warning(
                "Could not enqueue {}; housekeeping will re-queue it (the next failures are logged at DEBUG until"
                " a publish goes through): {}",
                what,
                reason,
            )
        else:
            logger.debug("Could not enqueue {} either; housekeeping will re-queue it: {}", what, reason)
