"""What the messaging services need from a task queue; app/worker/queue.py provides it with Celery."""

import uuid
from typing import Protocol


class DeliveryQueue(Protocol):
    async def fan_out(self, message_id: uuid.UUID) -> None:
        """Deliver a committed message to every subscribed webhook."""

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        """Make attempt number `attempt` (of at most `last_attempt`) after `delay` seconds."""
