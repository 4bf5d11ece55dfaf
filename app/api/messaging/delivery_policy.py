"""How deliveries are attempted and retried: the settings in one value, and the backoff arithmetic."""

import random
from dataclasses import dataclass
from datetime import timedelta

from app.core.config import Settings

# 2**62 seconds is far beyond any cap; the bound only keeps `base * 2**n` a finite float.
MAX_BACKOFF_EXPONENT = 62


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int
    timeout_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    retry_after_max_seconds: float
    requeue_after: timedelta
    stalled_after: timedelta
    retention: timedelta
    # A webhook whose every attempt failed for this long is disabled (app/api/messaging/endpoint_health.py).
    disable_failing_after: timedelta = timedelta(days=5)
    # A fan-out's claim lapses this long after its holder last renewed it; then another worker takes over.
    claim_lease: timedelta = timedelta(seconds=15)
    housekeeping_batch: int = 500  # stranded messages and lost retries re-queued per run
    purge_batch: int = 5000  # delivery rows deleted per run: one statement, one transaction
    # Finished messages are kept this long after their last change, then deleted (with their deliveries).
    message_retention: timedelta = timedelta(days=30)
    message_purge_batch: int = 1000  # messages deleted per run: one statement, one transaction

    @classmethod
    def from_settings(cls, settings: Settings) -> "DeliveryPolicy":
        return cls(
            max_attempts=settings.WEBHOOK_MAX_ATTEMPTS,
            timeout_seconds=settings.WEBHOOK_TIMEOUT_SECONDS,
            retry_base_seconds=settings.WEBHOOK_RETRY_BASE_SECONDS,
            retry_max_seconds=settings.WEBHOOK_RETRY_MAX_SECONDS,
            retry_after_max_seconds=settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS,
            requeue_after=timedelta(seconds=settings.MESSAGE_REQUEUE_AFTER_SECONDS),
            # A task that has not finished within its hard time limit is dead.
            stalled_after=timedelta(
                seconds=settings.CELERY_TASK_TIME_LIMIT_SECONDS + settings.MESSAGE_REQUEUE_AFTER_SECONDS
            ),
            retention=timedelta(days=settings.DELIVERY_RETENTION_DAYS),
            disable_failing_after=timedelta(days=settings.WEBHOOK_DISABLE_AFTER_FAILING_DAYS),
            message_retention=timedelta(days=settings.MESSAGE_RETENTION_DAYS),
            claim_lease=timedelta(seconds=settings.MESSAGE_CLAIM_LEASE_SECONDS),
        )

    def retry_delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt`, under this policy."""
        return retry_delay(
            attempt, self.retry_base_seconds, self.retry_max_seconds, retry_after, self.retry_after_max_seconds
        )


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None, retry_after_cap: float) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (1-based).

    Without Retry-After: "full jitter" backoff, uniform in [0, min(cap, base * 2**(attempt-1))], which
    spreads retries of many failed deliveries out instead of sending them back in bursts.
    With Retry-After: exactly what the receiver asked for, capped at `retry_after_cap` so that a receiver
    cannot park a delivery for days, and without jitter: the receiver chose the time, and adding to it
    would only delay past it.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if retry_after is not None:
        return min(max(retry_after, 0.0), retry_after_cap)
    ceiling = min(cap, base * 2 ** min(attempt - 1, MAX_BACKOFF_EXPONENT))
    return random.uniform(0.0, ceiling)  # noqa: S311 - jitter, not cryptography
