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
        """Update the webhooks these attempts went to, in the caller's transaction: one statement, whatever
        the number of attempts, which writes only the rows whose state changes (WebhooksTable.judge)."""
        judged = {webhook_id: verdict(outcome) for webhook_id, outcome in attempts}
        healthy = [w for w, v in judged.items() if v is Verdict.HEALTHY]
        failing = [w for w, v in judged.items() if v is Verdict.FAILING]
        gone = [w for w, v in judged.items() if v is Verdict.GONE]
        for webhook_id, reason in await self.webhooks.judge(healthy, failing, gone, at, at - self.disable_after):
            if reason is DisabledReason.GONE:
                logger.warning("Disabled webhook {}: it answered 410 Gone", webhook_id)
            else:
                logger.warning("Disabled webhook {}: every attempt failed for {}", webhook_id, self.disable_after)
