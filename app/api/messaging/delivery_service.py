"""Background delivery: fan a message out to its webhooks, record every attempt, schedule retries.

Called by the Celery tasks in app/worker/tasks.py; never by a router.
"""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.endpoint_health import EndpointHealth
from app.api.messaging.queue import DeliveryQueue
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import DeliveryOutcome, WebhookMessage
from app.core.time import utcnow
from app.db.delivery.model import Delivery, DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable

WEBHOOK_GONE = DeliveryOutcome(succeeded=False, retryable=False, error="webhook deleted", duration_ms=0)
# Disabled (by endpoint health or by the client): recorded as not sent, so that a redelivery can send it later.
WEBHOOK_DISABLED = DeliveryOutcome(
    succeeded=False, retryable=False, error="not sent: the webhook is disabled", duration_ms=0
)
# A bug or bad data (e.g. a malformed signing secret), not the receiver's fault: retrying would not help.
INTERNAL_ERROR = DeliveryOutcome(succeeded=False, retryable=False, error="internal error while sending", duration_ms=0)
# Outcomes of attempts that never reached the endpoint: they say nothing about its health.
NOT_ATTEMPTED = (WEBHOOK_GONE, WEBHOOK_DISABLED, INTERNAL_ERROR)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    webhook_id: uuid.UUID
    attempt: int
    last_attempt: int
    outcome: DeliveryOutcome


def summarise(latest: list[Delivery]) -> MessageStatus:
    """A message's status from the latest attempt per targeted webhook."""
    if any(d.next_attempt_at is not None for d in latest):
        return MessageStatus.DELIVERING
    succeeded = sum(d.status == DeliveryStatus.SUCCEEDED for d in latest)
    if succeeded == len(latest):
        return MessageStatus.DELIVERED
    return MessageStatus.FAILED if succeeded == 0 else MessageStatus.PARTIALLY_FAILED


class DeliveryService:
    def __init__(
        self, session: AsyncSession, webhook_client: WebhookClient, queue: DeliveryQueue, policy: DeliveryPolicy
    ) -> None:
        self.session = session
        self.webhook_client = webhook_client
        self.queue = queue
        self.policy = policy
        self.messages = MessagesTable(session)
        self.webhooks = WebhooksTable(session)
        self.deliveries = DeliveriesTable(session)
        self.endpoint_health = EndpointHealth(self.webhooks, policy.disable_failing_after)

    async def fan_out(self, message_id: uuid.UUID) -> None:
        """First attempt to every subscribed webhook, concurrently. Safe to run twice."""
        message = await self.messages.lock(message_id)
        if message is None or not await self._claimable(message):
            await self.session.rollback()
            return
        targets = await self.webhooks.subscribed(message.client_id, message.event)
        message.status = MessageStatus.DELIVERING if targets else MessageStatus.DELIVERED
        await self.messages.update_model(message)
        await self.session.commit()  # the claim; no transaction stays open across network calls
        if not targets:
            return
        # _send never raises (but for cancellation), so one target cannot fail the others.
        outcomes = await asyncio.gather(*(self._send(message, webhook) for webhook in targets))
        last = self.policy.max_attempts
        await self._record(
            message_id, [AttemptResult(w.id, 1, last, o) for w, o in zip(targets, outcomes, strict=True)]
        )

    async def retry(self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int) -> None:
        """Attempt number `attempt` for one webhook. A duplicate task (same attempt) does nothing."""
        message = await self.messages.first_or_default(message_id)
        if message is None or await self.deliveries.first_by(
            message_id=message_id, webhook_id=webhook_id, attempt=attempt
        ):
            await self.session.rollback()
            return
        webhook = await self.webhooks.first_by(id=webhook_id)
        await self.session.commit()
        outcome = WEBHOOK_GONE if webhook is None else await self._send(message, webhook)
        await self._record(message_id, [AttemptResult(webhook_id, attempt, last_attempt, outcome)])

    async def requeue_stranded(self) -> int:
        """Re-queue messages whose fan-out never ran, and retries whose task was lost.

        Each one is marked as re-queued in the same transaction, so that while a backlog lasts the next
        runs do not publish it again: a message counts as stranded again only after requeue_after, a
        retry as lost again only after stalled_after.
        """
        now = utcnow()
        message_ids = await self.messages.stranded_ids(
            now - self.policy.requeue_after, now - self.policy.stalled_after, self.policy.housekeeping_batch
        )
        overdue = await self.deliveries.overdue_retries(now - self.policy.stalled_after, self.policy.housekeeping_batch)
        retries = [(d.message_id, d.webhook_id, d.attempt + 1, self._last_attempt(d)) for d in overdue]
        await self.messages.mark_requeued(message_ids, now)
        await self.deliveries.reschedule([d.id for d in overdue], now)
        await self.session.commit()
        for message_id in message_ids:
            await self.queue.fan_out(message_id)
        for message_id, webhook_id, attempt, last_attempt in retries:
            await self.queue.retry(message_id, webhook_id, attempt, last_attempt, 0)
        if message_ids or retries:
            logger.info("Re-queued {} messages and {} retries", len(message_ids), len(retries))
        return len(message_ids) + len(retries)

    async def purge_deliveries(self) -> int:
        """Delete one batch of delivery rows older than the retention period; returns how many.

        One batch per run (beat runs it every housekeeping interval), never a loop: a backlog is worked off
        over the next runs, and no run can outlive the task's time limit.
        """
        cutoff = utcnow() - self.policy.retention
        purged = await self.deliveries.purge_created_before(cutoff, self.policy.purge_batch)
        await self.session.commit()
        if purged:
            logger.info("Purged {} delivery rows", purged)
        return purged

    async def purge_messages(self) -> int:
        """Delete one batch of finished messages past their retention, with their deliveries; returns how many.

        One batch per run, like purge_deliveries. Pending and delivering messages are never purged.
        """
        cutoff = utcnow() - self.policy.message_retention
        purged = await self.messages.purge_finished_before(cutoff, self.policy.message_purge_batch)
        await self.session.commit()
        if purged:
            logger.info("Purged {} finished messages", purged)
        return purged

    async def _judge_endpoints(self, recorded: list[AttemptResult]) -> None:
        """Endpoint health, in the transaction that records the attempts: 410 Gone or a long failing streak
        disables the webhook (app/api/messaging/endpoint_health.py)."""
        attempts = [(r.webhook_id, r.outcome) for r in recorded if r.outcome not in NOT_ATTEMPTED]
        await self.endpoint_health.record(attempts, utcnow())

    def _last_attempt(self, delivery: Delivery) -> int:
        """The budget a lost retry was scheduled with."""
        if delivery.last_attempt is not None:
            return delivery.last_attempt
        # Not stored (marked by code that does not record the budget): exact within a first series.
        return max(delivery.attempt + 1, self.policy.max_attempts)

    async def _claimable(self, message: Message) -> bool:
        if message.status == MessageStatus.PENDING:
            return True
        # Delivering but nothing recorded for a long time: the worker died mid-fan-out.
        stalled = message.updated_at < utcnow() - self.policy.stalled_after
        return (
            message.status == MessageStatus.DELIVERING
            and stalled
            and await self.deliveries.first_by(message_id=message.id) is None
        )

    async def _send(self, message: Message, webhook: Webhook) -> DeliveryOutcome:
        """One attempt; never raises: an unexpected error is a failed attempt, not a failed fan-out."""
        if not webhook.active:
            return WEBHOOK_DISABLED
        payload = WebhookMessage(
            id=str(message.id), event=message.event, created_at=message.created_at, payload=message.payload
        )
        try:
            secrets = webhook.signing_secrets(utcnow())  # two while a secret rotation overlaps
            return await self.webhook_client.deliver(webhook.url, secrets, payload, self.policy.timeout_seconds)
        except Exception:
            # Ids only: never the secret (the logging setup prints no local variables in tracebacks).
            logger.exception("Could not send message {} to webhook {}", message.id, webhook.id)
            return INTERNAL_ERROR

    async def _record(self, message_id: uuid.UUID, results: list[AttemptResult]) -> None:
        """Store the attempts and the message's new status in one transaction, then schedule retries."""
        message = await self.messages.lock(message_id)
        if message is None:  # deleted meanwhile (cascade): nothing to record
            await self.session.rollback()
            return
        latest = {d.webhook_id: d for d in await self.deliveries.latest_per_webhook(message_id)}
        retries: list[tuple[AttemptResult, float]] = []
        recorded: list[AttemptResult] = []
        for result in results:
            previous = latest.get(result.webhook_id)
            if previous is not None and previous.attempt >= result.attempt:
                # A duplicate task recorded this attempt while we were sending; it also scheduled the next.
                continue
            if previous is not None:
                # Only the latest attempt may wait for a retry (see overdue_retries).
                await self.deliveries.clear_scheduled(message_id, result.webhook_id)
            outcome = result.outcome
            delay = None
            if not outcome.succeeded and outcome.retryable and result.attempt < result.last_attempt:
                delay = self.policy.retry_delay(result.attempt, outcome.retry_after)
                retries.append((result, delay))
            latest[result.webhook_id] = await self.deliveries.insert_model(
                Delivery(
                    message_id=message_id,
                    webhook_id=result.webhook_id,
                    attempt=result.attempt,
                    status=DeliveryStatus.SUCCEEDED if outcome.succeeded else DeliveryStatus.FAILED,
                    response_status=outcome.response_status,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    next_attempt_at=None if delay is None else utcnow() + timedelta(seconds=delay),
                    last_attempt=None if delay is None else result.last_attempt,
                )
            )
            recorded.append(result)
        await self._judge_endpoints(recorded)
        message.status = summarise(list(latest.values()))
        await self.messages.update_model(message)
        await self.session.commit()
        for result, delay in retries:
            try:
                await self.queue.retry(message_id, result.webhook_id, result.attempt + 1, result.last_attempt, delay)
            except Exception as exc:
                logger.warning("Could not schedule retry of {}; housekeeping will: {!r}", message_id, exc)
