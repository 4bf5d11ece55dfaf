"""Background delivery: fan a message out to its webhooks, record every attempt, schedule retries.

Called by the Celery tasks in app/worker/tasks.py; never by a router. Many tasks run these use cases at
once on a worker process's one event loop, sharing its DeliveryLimits (per-endpoint and total slots).

A fan-out claims its message with a lease (claim_token, claimed_until) that it renews while it delivers,
and lists the webhooks still without a recorded attempt (unattempted_webhook_ids). If its worker dies the
lease lapses, and the workers' sweep (take_over_lapsed) re-queues the fan-out, which takes it over and
sends to those webhooks only. A fan-out never waits for a slow endpoint (nor in line behind attempts to
one that turns slow meanwhile): it records the other attempts, leaves that webhook unattempted and sets
the lease to when its attempt is due, so the same sweep hands it out again.
"""

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.api.messaging.delivery_limits import DeliveryLimits, EndpointSlowError
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


@dataclass(frozen=True, slots=True)
class Deferred:
    """An attempt not made now, because its endpoint is slow (or congested); it is due in `seconds`."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Claim:
    """The fan-out's claim, and when the earliest attempt it deferred is due (None: it deferred none)."""

    token: uuid.UUID
    deferred_for: float | None


def summarise(latest: list[Delivery], *, unattempted: bool = False) -> MessageStatus:
    """A message's status from the latest attempt per targeted webhook (and whether some have none yet)."""
    if unattempted or any(d.next_attempt_at is not None for d in latest):
        return MessageStatus.DELIVERING
    succeeded = sum(d.status == DeliveryStatus.SUCCEEDED for d in latest)
    if succeeded == len(latest):
        return MessageStatus.DELIVERED
    return MessageStatus.FAILED if succeeded == 0 else MessageStatus.PARTIALLY_FAILED


class DeliveryService:
    def __init__(
        self,
        session: AsyncSession,
        webhook_client: WebhookClient,
        queue: DeliveryQueue,
        policy: DeliveryPolicy,
        limits: DeliveryLimits | None = None,
    ) -> None:
        self.session = session
        self.webhook_client = webhook_client
        self.queue = queue
        self.policy = policy
        # Without the worker process's shared limits: no cap that matters, and nothing deferred.
        self.limits = limits or DeliveryLimits(total=1_000_000, per_endpoint=1_000_000, slow_after=math.inf)
        self.messages = MessagesTable(session)
        self.webhooks = WebhooksTable(session)
        self.deliveries = DeliveriesTable(session)
        self.endpoint_health = EndpointHealth(self.webhooks, policy.disable_failing_after)

    async def fan_out(self, message_id: uuid.UUID, *, redelivered: bool = False) -> None:
        """First attempt to every targeted webhook, concurrently. Safe to run twice.

        Takes over a fan-out nobody holds (deferred attempts due, or re-queued by the sweep), one whose
        holder's lease lapsed, or, when the broker `redelivered` this task (its worker died), any.
        """
        now = utcnow()
        message = await self.messages.lock(message_id)
        if message is None or not await self._claimable(message, redelivered):
            await self.session.rollback()
            return
        resuming = message.status == MessageStatus.DELIVERING
        targets = await self._targets(message, resuming)
        if not targets and not resuming:
            message.status = MessageStatus.DELIVERED
            await self.messages.update_model(message)
            await self.session.commit()
            return
        token = uuid.uuid4()
        message.status = MessageStatus.DELIVERING
        message.unattempted_webhook_ids = list(targets) or None
        message.claim_token = token
        message.claimed_until = now + self.policy.claim_lease
        await self.messages.update_model(message)
        await self.session.commit()  # the claim; no transaction stays open across network calls
        document = _document(message)
        async with self._renewing(message_id, token):
            # _first_attempt never raises (but for cancellation), so one target cannot fail the others.
            outcomes = await asyncio.gather(*(self._first_attempt(document, w, resuming) for w in targets.values()))
        last = self.policy.max_attempts
        results = [
            AttemptResult(webhook_id, 1, last, outcome)
            for webhook_id, outcome in zip(targets, outcomes, strict=True)
            if isinstance(outcome, DeliveryOutcome)
        ]
        deferred_for = min((o.seconds for o in outcomes if isinstance(o, Deferred)), default=None)
        await self._record(message_id, results, Claim(token, deferred_for))

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
        if webhook is not None and self.limits.congested(webhook.url):
            await self._postpone(message_id, webhook_id, attempt, last_attempt, self.limits.book(webhook.url))
            return
        outcome = WEBHOOK_GONE if webhook is None else await self._send(_document(message), webhook)
        await self._record(message_id, [AttemptResult(webhook_id, attempt, last_attempt, outcome)])

    async def take_over_lapsed(self) -> int:
        """Re-queue the fan-out of every message whose claim has lapsed: its worker died, or the attempts it
        deferred are due. Each is leased meanwhile, so that other sweeps leave it alone; returns how many."""
        now = utcnow()
        message_ids = await self.messages.take_over_lapsed(
            now, now + self.policy.claim_lease, self.policy.housekeeping_batch
        )
        await self.session.commit()
        for message_id in message_ids:
            try:
                await self.queue.fan_out(message_id)
            except Exception as exc:  # leased: the next sweep after the lease tries again
                logger.warning("Could not re-queue the fan-out of {}: {!r}", message_id, exc)
        return len(message_ids)

    async def requeue_stranded(
        self, pending_after: timedelta | None = None, overdue_after: timedelta | None = None
    ) -> int:
        """Re-queue messages whose fan-out never ran, and retries whose task was lost.

        A message counts as stranded once pending for `pending_after` (default: requeue_after), a retry as
        lost once overdue by `overdue_after` (default: stalled_after). Each one is marked as re-queued in the
        same transaction, so that while a backlog lasts the next runs do not publish it again: a message
        counts as stranded again only after that long, a retry as lost again only after that long too.
        """
        now = utcnow()
        message_ids = await self.messages.stranded_ids(
            now - (pending_after or self.policy.requeue_after),
            now - self.policy.stalled_after,
            self.policy.housekeeping_batch,
        )
        overdue = await self.deliveries.overdue_retries(
            now - (overdue_after or self.policy.stalled_after), self.policy.housekeeping_batch
        )
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

    async def _claimable(self, message: Message, redelivered: bool) -> bool:
        if message.status == MessageStatus.PENDING:
            return True
        if message.status != MessageStatus.DELIVERING:
            return False
        if message.claimed_until is not None:
            # Nobody holds it (attempts deferred, or re-queued by the sweep), its holder stopped renewing the
            # lease, or the broker redelivered this task because its worker died.
            return message.claim_token is None or message.claimed_until < utcnow() or redelivered
        # Claimed without a lease (before leases existed): taken over once stalled with nothing recorded.
        stalled = message.updated_at < utcnow() - self.policy.stalled_after
        return stalled and await self.deliveries.first_by(message_id=message.id) is None

    async def _targets(self, message: Message, resuming: bool) -> dict[uuid.UUID, Webhook | None]:
        """The webhooks to attempt, by id; None for one deleted or deactivated since the fan-out began."""
        if resuming and message.unattempted_webhook_ids is not None:
            ids = message.unattempted_webhook_ids
            live = {w.id: w for w in await self.webhooks.all_by(col(Webhook.id).in_(ids))}
            return {webhook_id: live.get(webhook_id) for webhook_id in ids}
        subscribed = await self.webhooks.subscribed(message.client_id, message.event)
        if not resuming:
            return {w.id: w for w in subscribed}
        recorded = {d.webhook_id for d in await self.deliveries.latest_per_webhook(message.id)}
        return {w.id: w for w in subscribed if w.id not in recorded}

    async def _first_attempt(
        self, document: WebhookMessage, webhook: Webhook | None, resuming: bool
    ) -> DeliveryOutcome | Deferred:
        if webhook is None:
            return WEBHOOK_GONE
        if not webhook.active:
            return WEBHOOK_DISABLED
        # A fan-out never waits for a slow endpoint. Taken over, it waits its turn, unless the line is full.
        held_up = self.limits.congested(webhook.url) if resuming else self.limits.is_slow(webhook.url)
        if held_up:
            return Deferred(self.limits.book(webhook.url))
        try:
            # A first attempt also leaves the endpoint's line if the endpoint turns slow while it waits.
            return await self._send(document, webhook, unless_slow=not resuming)
        except EndpointSlowError:
            return Deferred(self.limits.book(webhook.url))

    async def _send(self, document: WebhookMessage, webhook: Webhook, *, unless_slow: bool = False) -> DeliveryOutcome:
        """One attempt, in a slot of its endpoint; never raises (an unexpected error is a failed attempt), but
        EndpointSlowError when `unless_slow` and the endpoint turned slow before a slot was free."""
        if not webhook.active:
            return WEBHOOK_DISABLED
        try:
            secrets = webhook.signing_secrets(utcnow())  # two while a secret rotation overlaps
            async with self.limits.slot(webhook.url, unless_slow=unless_slow):
                return await self.webhook_client.deliver(webhook.url, secrets, document, self.policy.timeout_seconds)
        except EndpointSlowError:
            raise
        except Exception:
            # Ids only: never the secret (the logging setup prints no local variables in tracebacks).
            logger.exception("Could not send message {} to webhook {}", document.id, webhook.id)
            return INTERNAL_ERROR

    @asynccontextmanager
    async def _renewing(self, message_id: uuid.UUID, token: uuid.UUID) -> AsyncIterator[None]:
        """Renew the claim's lease while the block runs, so that only a dead worker's claim lapses."""
        stop = asyncio.Event()
        interval = self.policy.claim_lease.total_seconds() / 3

        async def renew() -> None:
            while not await _set_within(stop, interval):
                try:
                    await self.messages.renew_claim(message_id, token, utcnow() + self.policy.claim_lease)
                    await self.session.commit()
                except Exception as exc:  # the fan-out goes on; at worst another worker takes it over too
                    await self.session.rollback()
                    logger.warning("Could not renew the claim on message {}: {!r}", message_id, exc)

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            stop.set()
            await renewer  # a renewal under way finishes first: the session is the block's again after this

    async def _postpone(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        """Publish the retry again, `delay` seconds later; its mark moves too, so housekeeping waits for it."""
        await self.deliveries.postpone(message_id, webhook_id, utcnow() + timedelta(seconds=delay))
        await self.session.commit()
        try:
            await self.queue.retry(message_id, webhook_id, attempt, last_attempt, delay)
        except Exception as exc:
            logger.warning("Could not postpone the retry of {}; housekeeping will: {!r}", message_id, exc)

    async def _record(
        self, message_id: uuid.UUID, results: Sequence[AttemptResult], claim: Claim | None = None
    ) -> None:
        """Store the attempts and the message's new status in one transaction of a few statements, whatever
        the number of attempts; release the fan-out's `claim`; then schedule the retries."""
        message = await self.messages.lock(message_id)
        if message is None:  # deleted meanwhile (cascade): nothing to record
            await self.session.rollback()
            return
        now = utcnow()
        latest = {d.webhook_id: d for d in await self.deliveries.latest_per_webhook(message_id)}
        rows: list[Delivery] = []
        recorded: list[AttemptResult] = []
        superseded: list[uuid.UUID] = []
        retries: list[tuple[AttemptResult, float]] = []
        for result in results:
            previous = latest.get(result.webhook_id)
            if previous is not None and previous.attempt >= result.attempt:
                # A duplicate task recorded this attempt while we were sending; it also scheduled the next.
                continue
            if previous is not None:
                superseded.append(result.webhook_id)  # only the latest attempt may wait for a retry
            outcome = result.outcome
            delay = None
            if not outcome.succeeded and outcome.retryable and result.attempt < result.last_attempt:
                delay = self.policy.retry_delay(result.attempt, outcome.retry_after)
                retries.append((result, delay))
            latest[result.webhook_id] = Delivery(
                message_id=message_id,
                webhook_id=result.webhook_id,
                attempt=result.attempt,
                status=DeliveryStatus.SUCCEEDED if outcome.succeeded else DeliveryStatus.FAILED,
                response_status=outcome.response_status,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
                last_attempt=None if delay is None else result.last_attempt,
                created_at=now,
            )
            rows.append(latest[result.webhook_id])
            recorded.append(result)
        await self.deliveries.clear_scheduled(message_id, superseded)
        await self.deliveries.insert_many(rows)
        await self._judge_endpoints(recorded)
        unattempted = [w for w in message.unattempted_webhook_ids or [] if w not in latest]
        message.unattempted_webhook_ids = unattempted or None
        if not unattempted:
            message.claim_token = message.claimed_until = None
        elif claim is not None and message.claim_token == claim.token:
            # What is left is what this fan-out deferred: nobody holds it, and the sweep hands it out when due.
            message.claim_token = None
            message.claimed_until = now + timedelta(seconds=claim.deferred_for or 0.0)
        message.status = summarise(list(latest.values()), unattempted=bool(unattempted))
        await self.messages.update_model(message)
        await self.session.commit()
        await asyncio.gather(*(self._schedule(message_id, result, delay) for result, delay in retries))

    async def _schedule(self, message_id: uuid.UUID, result: AttemptResult, delay: float) -> None:
        try:
            await self.queue.retry(message_id, result.webhook_id, result.attempt + 1, result.last_attempt, delay)
        except Exception as exc:
            logger.warning("Could not schedule retry of {}; housekeeping will: {!r}", message_id, exc)


def _document(message: Message) -> WebhookMessage:
    """What every attempt of the message sends."""
    return WebhookMessage(
        id=str(message.id), event=message.event, created_at=message.created_at, payload=message.payload
    )


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds`."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
