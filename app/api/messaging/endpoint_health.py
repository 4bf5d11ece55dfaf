"""Endpoint health: which webhooks to disable, judged from the attempts made to them.

As the large webhook services do: an endpoint answering `410 Gone` is disabled at once (the receiver says
it is gone for good), and one whose every attempt has failed for a period (WEBHOOK_DISABLE_AFTER_FAILING_DAYS,
default 5) is disabled too, so that it stops consuming attempts message after message. Any 2xx ends a failing
streak. Only real attempts count: a message that was not sent (the webhook was disabled or deleted, or our
own error) says nothing about the endpoint. A disabled webhook keeps its reason and time until the client
turns it on again (PATCH {"active": true}); meanwhile its messages are recorded as not sent.
"""

import uuid
from datetime import datetime, timedelta
from enum import StrEnum

from loguru import logger

from app.clients.webhooks.models import DeliveryOutcome
from app.db.webhook.model import DisabledReason
from app.db.webhook.table import WebhooksTable

GONE_STATUS = 410


class Verdict(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"
    GONE = "gone"


def verdict(outcome: DeliveryOutcome) -> Verdict:
    """What one attempt's outcome says about the endpoint."""
    if outcome.succeeded:
        return Verdict.HEALTHY
    if outcome.response_status == GONE_STATUS:
        return Verdict.GONE
    return Verdict.FAILING


class EndpointHealth:
    def __init__(self, webhooks: WebhooksTable, disable_after: timedelta) -> None:
        self.webhooks = webhooks
        self.disable_after = disable_after

    async def record(self, attempts: list[tuple[uuid.UUID, DeliveryOutcome]], at: datetime) -> None:
        """Update the webhooks these attempts went to, in the caller's transaction.

        In webhook id order: two transactions recording attempts to the same webhooks lock their rows in the
        same order, so they cannot deadlock.
        """
        for webhook_id, outcome in sorted(attempts, key=lambda attempt: attempt[0]):
            await self._record_one(webhook_id, verdict(outcome), at)

    async def _record_one(self, webhook_id: uuid.UUID, judged: Verdict, at: datetime) -> None:
        if judged is Verdict.HEALTHY:
            await self.webhooks.clear_failing(webhook_id)
            return
        await self.webhooks.mark_failing(webhook_id, at)
        if judged is Verdict.GONE:
            disabled = await self.webhooks.disable(webhook_id, DisabledReason.GONE, at)
        else:
            disabled = await self.webhooks.disable(
                webhook_id, DisabledReason.FAILING, at, failing_before=at - self.disable_after
            )
        if disabled:
            reason = (
                "it answered 410 Gone" if judged is Verdict.GONE else f"every attempt failed for {self.disable_after}"
            )
            logger.warning("Disabled webhook {}: {}", webhook_id, reason)
