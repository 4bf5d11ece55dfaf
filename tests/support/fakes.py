"""Stand-ins for the task queue: what would have been published, and a broker that is down."""

import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryCall:
    message_id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    last_attempt: int
    delay: float


@dataclass
class RecordingQueue:
    """A DeliveryQueue that records what would have been published (to Celery, in production)."""

    fan_outs: list[uuid.UUID] = field(default_factory=list)
    retries: list[RetryCall] = field(default_factory=list)

    async def fan_out(self, message_id: uuid.UUID) -> None:
        self.fan_outs.append(message_id)

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        self.retries.append(RetryCall(message_id, webhook_id, attempt, last_attempt, delay))


@dataclass
class BrokenQueue(RecordingQueue):
    """Redis is down: every publish raises, after being counted (so a test sees it was tried)."""

    async def fan_out(self, message_id: uuid.UUID) -> None:
        await super().fan_out(message_id)
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await super().retry(message_id, webhook_id, attempt, last_attempt, delay)
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")
