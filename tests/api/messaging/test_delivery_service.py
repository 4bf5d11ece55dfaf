"""DeliveryService against a real local HTTP receiver, the real database and a recording queue."""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.api.messaging.delivery_limits import DeliveryLimits
from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import INTERNAL_ERROR, DeliveryService, summarise
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import DeliveryOutcome, WebhookMessage
from app.clients.webhooks.signing import generate_secret
from app.core.config import Settings
from app.core.encryption import Sealed
from app.core.time import utcnow
from app.db.delivery.model import Delivery, DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from app.db.webhook.model import DisabledReason, Webhook
from app.db.webhook.table import WebhooksTable
from tests.support.factories import create_delivery, create_message, create_webhook
from tests.support.fakes import BrokenQueue, RecordingQueue, RetryCall
from tests.support.ports import closed_port
from tests.support.receiver import Answer, Receiver
from tests.support.sealing import secret_of

T = TypeVar("T", Webhook, Message, Delivery)

POLICY = DeliveryPolicy(
    max_attempts=3,
    timeout_seconds=2.0,
    retry_base_seconds=1.0,
    retry_max_seconds=10.0,
    retry_after_max_seconds=30.0,
    requeue_after=timedelta(seconds=60),
    stalled_after=timedelta(minutes=5),
    retention=timedelta(days=30),
)
PAYLOAD: dict[str, Any] = {"order_id": 42, "lines": [{"sku": "A-1", "qty": 2}], "note": "café ☕"}


@pytest.fixture
def service(db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue) -> DeliveryService:
    return DeliveryService(db_session, webhook_client, queue, POLICY)


class Data:
    """Rows written straight to the tables, as the API would have left them.

    Every row handed to a test is a detached snapshot: the service under test rolls the shared
    session back at times, which would expire attached instances mid-assertion.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.webhooks = WebhooksTable(session)
        self.messages = MessagesTable(session)
        self.deliveries = DeliveriesTable(session)

    async def webhook(
        self,
        url: str,
        *events: str,
        client_id: str = "client-a",
        active: bool = True,
        deleted: bool = False,
        secret: str | None = None,
    ) -> Webhook:
        webhook = await create_webhook(
            self.session,
            client_id=client_id,
            url=url,
            events=list(events or ("order.created",)),
            active=active,
            secret=secret or generate_secret(),
        )
        if deleted:
            assert await self.webhooks.soft_delete(webhook.id)
            await self.session.refresh(webhook)
        await self.session.commit()
        return self._detached(webhook)

    async def message(
        self,
        event: str = "order.created",
        *,
        client_id: str = "client-a",
        status: MessageStatus = MessageStatus.PENDING,
        age: timedelta = timedelta(0),
        **fields: Any,
    ) -> Message:
        at = utcnow() - age
        message = await create_message(
            self.session, client_id=client_id, event=event, payload=PAYLOAD, status=status, created_at=at, **fields
        )
        await self.session.commit()
        return self._detached(message)

    async def delivery(
        self,
        message: Message,
        webhook: Webhook,
        attempt: int,
        *,
        succeeded: bool = False,
        next_attempt_at: datetime | None = None,
        last_attempt: int | None = None,
        age: timedelta = timedelta(0),
    ) -> Delivery:
        delivery = await create_delivery(
            self.session,
            message_id=message.id,
            webhook_id=webhook.id,
            attempt=attempt,
            succeeded=succeeded,
            next_attempt_at=next_attempt_at,
            last_attempt=last_attempt,
            created_at=utcnow() - age,
        )
        await self.session.commit()
        return self._detached(delivery)

    async def attempts(self, message: Message) -> list[Delivery]:
        """Every delivery row of the message, by webhook url order of creation and attempt."""
        rows = [self._detached(row) for row in await self.deliveries.all_by(message_id=message.id)]
        return sorted(rows, key=lambda d: (d.attempt, d.created_at))

    async def status(self, message: Message) -> MessageStatus:
        return (await self.stored(message)).status

    async def stored(self, message: Message) -> Message:
        row = await self.messages.lock(message.id)  # populate_existing: what the database says now
        assert row is not None
        await self.session.commit()
        return self._detached(row)

    def _detached(self, row: T) -> T:
        self.session.expunge(row)
        return row


@pytest.fixture
def data(db_session: AsyncSession) -> Data:
    return Data(db_session)


# ---- fan-out -----------------------------------------------------------------------------------


async def test_fan_out_sends_to_every_subscribed_active_webhook_of_the_client_only(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    first = await data.webhook(receiver.url(200), "order.created")
    second = await data.webhook(receiver.url(204), "order.paid", "order.created")
    others = [
        await data.webhook(receiver.url(200), "order.created", client_id="client-b"),
        await data.webhook(receiver.url(200), "order.paid"),
        await data.webhook(receiver.url(200), "order.created", deleted=True),
        await data.webhook(receiver.url(200), "order"),  # a prefix is a different event
    ]
    message = await data.message("order.created")

    await service.fan_out(message.id)

    attempts = await data.attempts(message)
    assert sorted((d.webhook_id, d.attempt, d.status, d.response_status) for d in attempts) == sorted(
        [(first.id, 1, DeliveryStatus.SUCCEEDED, 200), (second.id, 1, DeliveryStatus.SUCCEEDED, 204)]
    )
    assert all(d.error is None and d.next_attempt_at is None and d.duration_ms >= 0 for d in attempts)
    assert await data.status(message) == MessageStatus.DELIVERED
    assert len(receiver.to(first.url)) == 1
    assert len(receiver.to(second.url)) == 1
    assert all(receiver.to(webhook.url) == [] for webhook in others)
    assert len(receiver.requests) == 2
    assert queue.retries == []
    assert queue.fan_outs == []


async def test_the_request_is_signed_per_standard_webhooks(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    webhook = await data.webhook(receiver.url(200))
    message = await data.message()
    sent_after = int(utcnow().timestamp())

    await service.fan_out(message.id)

    (request,) = receiver.to(webhook.url)
    assert request.headers["webhook-id"] == str(message.id)
    assert request.headers["content-type"] == "application/json"
    assert sent_after <= int(request.headers["webhook-timestamp"]) <= int(utcnow().timestamp())
    assert request.headers["webhook-signature"].startswith("v1,")
    document = json.loads(request.body)
    assert document == {"type": "order.created", "timestamp": document["timestamp"], "data": PAYLOAD}
    assert datetime.fromisoformat(document["timestamp"]) == message.created_at

    verified = StandardWebhook(secret_of(webhook)).verify(request.body, request.headers)
    assert verified == document
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(generate_secret()).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret_of(webhook)).verify(request.body.replace(b"42", b"43"), request.headers)


async def test_each_webhook_gets_a_signature_with_its_own_secret(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    webhooks = [await data.webhook(receiver.url(200)) for _ in range(2)]
    message = await data.message()

    await service.fan_out(message.id)

    for webhook in webhooks:
        (request,) = receiver.to(webhook.url)
        StandardWebhook(secret_of(webhook)).verify(request.body, request.headers)
    bodies = {request.body for request in receiver.requests}
    assert len(bodies) == 1  # the same document to everyone


async def test_fan_out_with_no_subscribed_webhook_is_delivered(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    await data.webhook(receiver.url(200), "order.paid")
    message = await data.message("order.created")

    await service.fan_out(message.id)

    assert await data.status(message) == MessageStatus.DELIVERED
    assert await data.attempts(message) == []
    assert receiver.requests == []


async def test_fan_out_twice_sends_once(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    webhook = await data.webhook(receiver.url(500))
    message = await data.message()

    await service.fan_out(message.id)
    await service.fan_out(message.id)  # a duplicate task, e.g. re-queued by housekeeping

    assert len(receiver.to(webhook.url)) == 1
    assert len(await data.attempts(message)) == 1
    assert len(queue.retries) == 1


async def test_fan_out_of_an_unknown_message_does_nothing(
    service: DeliveryService, receiver: Receiver, queue: RecordingQueue
) -> None:
    await service.fan_out(uuid.uuid4())
    assert receiver.requests == []
    assert queue.retries == []


@pytest.mark.parametrize("status", [MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.PARTIALLY_FAILED])
async def test_fan_out_of_a_finished_message_does_nothing(
    service: DeliveryService, data: Data, receiver: Receiver, status: MessageStatus
) -> None:
    await data.webhook(receiver.url(200))
    message = await data.message(status=status, age=timedelta(hours=1))

    await service.fan_out(message.id)

    assert receiver.requests == []
    assert await data.status(message) == status


async def test_fan_out_reclaims_a_message_whose_worker_died(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    """Delivering for longer than a task may live, and nothing recorded: the fan-out runs again."""
    webhook = await data.webhook(receiver.url(200))
    stalled = await data.message(status=MessageStatus.DELIVERING, age=POLICY.stalled_after + timedelta(minutes=1))
    running = await data.message(status=MessageStatus.DELIVERING, age=timedelta(seconds=5))

    await service.fan_out(stalled.id)
    await service.fan_out(running.id)

    assert [r.headers["webhook-id"] for r in receiver.to(webhook.url)] == [str(stalled.id)]
    assert await data.status(stalled) == MessageStatus.DELIVERED
    assert await data.status(running) == MessageStatus.DELIVERING


async def test_fan_out_leaves_a_stalled_message_with_deliveries_alone(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    """Its attempts were recorded, so the retries (not a second fan-out) carry on."""
    webhook = await data.webhook(receiver.url(200))
    message = await data.message(status=MessageStatus.DELIVERING, age=timedelta(hours=1))
    await data.delivery(message, webhook, 1, next_attempt_at=utcnow())

    await service.fan_out(message.id)

    assert receiver.requests == []
    assert len(await data.attempts(message)) == 1


async def test_an_unexpected_error_for_one_webhook_fails_that_delivery_only(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    """A malformed secret makes sign() raise: that attempt fails for good, the others go out, nothing leaks."""
    malformed = "whsec_not*base64!"
    good = await data.webhook(receiver.url(200))
    broken = await data.webhook(receiver.url(200), secret=malformed)
    message = await data.message()
    logged: list[str] = []
    handler_id = logger.add(
        lambda m: logged.append(str(m)), level="ERROR", format="{message}\n{exception}", diagnose=False
    )
    try:
        await service.fan_out(message.id)
    finally:
        logger.remove(handler_id)

    attempts = {d.webhook_id: d for d in await data.attempts(message)}
    assert attempts[good.id].status == DeliveryStatus.SUCCEEDED
    failed = attempts[broken.id]
    assert (failed.status, failed.response_status, failed.error) == (DeliveryStatus.FAILED, None, INTERNAL_ERROR.error)
    assert failed.next_attempt_at is None
    assert queue.retries == []  # not the receiver's fault: retrying would not help
    assert await data.status(message) == MessageStatus.PARTIALLY_FAILED
    assert len(receiver.to(good.url)) == 1
    assert receiver.to(broken.url) == []
    (line,) = logged
    assert str(message.id) in line
    assert str(broken.id) in line
    assert "ValueError" in line
    assert malformed not in line
    assert malformed.removeprefix("whsec_") not in line


# ---- outcomes and status ----------------------------------------------------------------------


async def test_retryable_failure_schedules_a_retry_and_keeps_delivering(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    webhook = await data.webhook(receiver.url(503))
    message = await data.message()
    before = utcnow()

    await service.fan_out(message.id)

    (attempt,) = await data.attempts(message)
    assert attempt.status == DeliveryStatus.FAILED
    assert attempt.response_status == 503
    assert attempt.error == "HTTP 503"
    assert await data.status(message) == MessageStatus.DELIVERING
    (call,) = queue.retries
    assert (call.message_id, call.webhook_id, call.attempt, call.last_attempt) == (message.id, webhook.id, 2, 3)
    # Full jitter: anywhere in [0, base * 2**0].
    assert 0 <= call.delay <= POLICY.retry_base_seconds
    assert attempt.next_attempt_at is not None
    scheduled = (attempt.next_attempt_at - before).total_seconds()
    assert call.delay - 0.5 <= scheduled <= call.delay + 5


async def test_connection_refused_is_retried(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    await data.webhook(f"http://127.0.0.1:{closed_port()}/hook")
    message = await data.message()

    await service.fan_out(message.id)

    (attempt,) = await data.attempts(message)
    assert attempt.response_status is None
    assert attempt.error == "connection refused"
    assert [call.attempt for call in queue.retries] == [2]
    assert await data.status(message) == MessageStatus.DELIVERING


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422, 301])
async def test_permanent_failure_fails_without_retry(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue, status: int
) -> None:
    await data.webhook(receiver.url(Answer(status, {"location": "https://elsewhere.example/"})))
    message = await data.message()

    await service.fan_out(message.id)

    (attempt,) = await data.attempts(message)
    assert attempt.response_status == status
    assert attempt.error is not None
    assert attempt.error.startswith(f"HTTP {status}")
    assert attempt.next_attempt_at is None
    assert queue.retries == []
    assert await data.status(message) == MessageStatus.FAILED


async def test_mixed_outcomes_are_partially_failed(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    await data.webhook(receiver.url(200))
    await data.webhook(receiver.url(400))
    message = await data.message()

    await service.fan_out(message.id)

    assert sorted(d.status for d in await data.attempts(message)) == [DeliveryStatus.FAILED, DeliveryStatus.SUCCEEDED]
    assert await data.status(message) == MessageStatus.PARTIALLY_FAILED
    assert queue.retries == []


async def test_a_pending_retry_keeps_the_message_delivering(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    await data.webhook(receiver.url(200))
    retried = await data.webhook(receiver.url(500, 200))
    message = await data.message()

    await service.fan_out(message.id)
    assert await data.status(message) == MessageStatus.DELIVERING

    (call,) = queue.retries
    await service.retry(message.id, retried.id, call.attempt, call.last_attempt)
    assert await data.status(message) == MessageStatus.DELIVERED


# ---- retries -----------------------------------------------------------------------------------


async def test_retry_records_the_next_attempt_and_a_duplicate_does_nothing(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    webhook = await data.webhook(receiver.url(500, 200))
    message = await data.message()
    await service.fan_out(message.id)

    await service.retry(message.id, webhook.id, 2, 3)
    await service.retry(message.id, webhook.id, 2, 3)  # the same task delivered twice by the broker

    assert len(receiver.to(webhook.url)) == 2
    attempts = await data.attempts(message)
    assert [(d.attempt, d.status, d.response_status) for d in attempts] == [
        (1, DeliveryStatus.FAILED, 500),
        (2, DeliveryStatus.SUCCEEDED, 200),
    ]
    assert attempts[1].next_attempt_at is None
    assert await data.status(message) == MessageStatus.DELIVERED
    assert len(queue.retries) == 1  # only the one scheduled after attempt 1
    # The same message id on every attempt, so receivers can de-duplicate.
    assert {r.headers["webhook-id"] for r in receiver.to(webhook.url)} == {str(message.id)}


async def test_after_the_last_attempt_the_message_fails(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    webhook = await data.webhook(receiver.url(503))
    message = await data.message()

    await service.fan_out(message.id)
    for _ in range(POLICY.max_attempts - 1):
        call = queue.retries[-1]
        assert await data.status(message) == MessageStatus.DELIVERING
        await service.retry(call.message_id, call.webhook_id, call.attempt, call.last_attempt)

    assert [call.attempt for call in queue.retries] == [2, 3]  # nothing after attempt 3
    assert all(call.last_attempt == POLICY.max_attempts for call in queue.retries)
    attempts = await data.attempts(message)
    assert [d.attempt for d in attempts] == [1, 2, 3]
    assert all(d.next_attempt_at is None for d in attempts)  # nothing waits any more
    assert len(receiver.to(webhook.url)) == 3
    assert await data.status(message) == MessageStatus.FAILED


async def test_only_the_latest_attempt_waits_for_a_retry(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    """next_attempt_at (and the budget of the retries) is on the latest failed attempt only, while a retry is due."""
    webhook = await data.webhook(receiver.url(503, 503, 200))
    message = await data.message()

    await service.fan_out(message.id)
    (first,) = await data.attempts(message)
    assert first.next_attempt_at is not None
    assert first.last_attempt == POLICY.max_attempts

    await service.retry(message.id, webhook.id, 2, POLICY.max_attempts)
    attempts = await data.attempts(message)
    assert [(d.attempt, d.next_attempt_at is not None) for d in attempts] == [(1, False), (2, True)]
    assert attempts[1].last_attempt == POLICY.max_attempts

    await service.retry(message.id, webhook.id, 3, POLICY.max_attempts)
    attempts = await data.attempts(message)
    assert [(d.attempt, d.status, d.next_attempt_at) for d in attempts] == [
        (1, DeliveryStatus.FAILED, None),
        (2, DeliveryStatus.FAILED, None),
        (3, DeliveryStatus.SUCCEEDED, None),
    ]
    assert attempts[2].last_attempt is None  # no retry scheduled after it
    assert await data.status(message) == MessageStatus.DELIVERED
    assert [call.attempt for call in queue.retries] == [2, 3]


async def test_a_redelivery_clears_the_mark_of_the_attempt_it_follows(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    """What MessageService.redeliver leaves: the latest failed attempt marked due, with a new budget."""
    webhook = await data.webhook(receiver.url(200))
    message = await data.message(status=MessageStatus.FAILED)
    await data.delivery(message, webhook, 3)
    latest = await data.deliveries.latest_per_webhook(message.id)
    await data.deliveries.schedule_redelivery(latest, utcnow(), POLICY.max_attempts)
    await data.session.commit()
    (marked,) = await data.attempts(message)
    assert marked.next_attempt_at is not None
    assert marked.last_attempt == 3 + POLICY.max_attempts

    await service.retry(message.id, webhook.id, 4, 3 + POLICY.max_attempts)

    attempts = await data.attempts(message)
    assert [(d.attempt, d.status, d.next_attempt_at) for d in attempts] == [
        (3, DeliveryStatus.FAILED, None),
        (4, DeliveryStatus.SUCCEEDED, None),
    ]
    assert await data.status(message) == MessageStatus.DELIVERED


async def test_backoff_grows_with_the_attempt_number_up_to_the_cap(
    data: Data, db_session: AsyncSession, webhook_client: WebhookClient, receiver: Receiver, queue: RecordingQueue
) -> None:
    policy = DeliveryPolicy(**{**_fields(POLICY), "max_attempts": 10, "retry_max_seconds": 3.0})
    service = DeliveryService(db_session, webhook_client, queue, policy)
    webhook = await data.webhook(receiver.url(500))
    message = await data.message()
    await service.fan_out(message.id)
    for attempt in range(2, 8):
        await service.retry(message.id, webhook.id, attempt, 10)

    delays = [call.delay for call in queue.retries]
    ceilings = [min(3.0, 1.0 * 2 ** (n - 1)) for n in range(1, 8)]
    assert len(delays) == 7
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))


def _fields(policy: DeliveryPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in DeliveryPolicy.__dataclass_fields__}


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("7", 7.0), ("0", 0.0), ("86400", POLICY.retry_after_max_seconds)],
    ids=["honoured", "zero", "capped"],
)
async def test_429_retry_after_sets_the_delay(
    service: DeliveryService,
    data: Data,
    receiver: Receiver,
    queue: RecordingQueue,
    retry_after: str,
    delay: float,
) -> None:
    await data.webhook(receiver.url(Answer(429, {"Retry-After": retry_after})))
    message = await data.message()
    before = utcnow()

    await service.fan_out(message.id)

    (call,) = queue.retries
    assert call.delay == delay
    (attempt,) = await data.attempts(message)
    assert attempt.response_status == 429
    assert attempt.next_attempt_at is not None
    assert timedelta(seconds=delay) <= attempt.next_attempt_at - before <= timedelta(seconds=delay + 5)


async def test_retry_after_http_date_is_honoured(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    when = (utcnow() + timedelta(seconds=20)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    await data.webhook(receiver.url(Answer(503, {"Retry-After": when})))
    message = await data.message()

    await service.fan_out(message.id)

    (call,) = queue.retries
    assert 17 <= call.delay <= 20


@pytest.mark.parametrize(
    ("gone", "error"), [("deleted", "webhook deleted"), ("disabled", "not sent: the webhook is disabled")]
)
async def test_retry_to_a_deleted_or_disabled_webhook_records_a_failure(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue, gone: str, error: str
) -> None:
    webhook = await data.webhook(receiver.url(500, 200))
    message = await data.message()
    await service.fan_out(message.id)
    if gone == "deleted":
        assert await data.webhooks.soft_delete(webhook.id)
    else:
        assert await data.webhooks.disable([webhook.id], DisabledReason.MANUAL, utcnow()) == [webhook.id]
    await data.session.commit()

    await service.retry(message.id, webhook.id, 2, 3)

    assert len(receiver.to(webhook.url)) == 1  # only the first attempt went out
    last = (await data.attempts(message))[-1]
    assert (last.attempt, last.status, last.response_status) == (2, DeliveryStatus.FAILED, None)
    assert last.error == error
    assert last.next_attempt_at is None
    assert len(queue.retries) == 1  # not retried again
    assert await data.status(message) == MessageStatus.FAILED


async def test_retry_of_an_unknown_message_does_nothing(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    webhook = await data.webhook(receiver.url(200))
    await service.retry(uuid.uuid4(), webhook.id, 2, 3)
    assert receiver.requests == []


async def test_a_retry_that_cannot_be_queued_is_left_for_housekeeping(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver
) -> None:
    broken = BrokenQueue()
    service = DeliveryService(db_session, webhook_client, broken, POLICY)
    await data.webhook(receiver.url(503))
    message = await data.message()

    await service.fan_out(message.id)  # does not raise

    assert len(broken.retries) == 1
    (attempt,) = await data.attempts(message)
    assert attempt.next_attempt_at is not None  # housekeeping's overdue_retries will find it
    assert await data.status(message) == MessageStatus.DELIVERING


# ---- housekeeping ------------------------------------------------------------------------------


async def test_requeue_stranded_requeues_old_pending_and_stalled_messages_only(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    old = POLICY.requeue_after + timedelta(seconds=5)
    stalled_age = POLICY.stalled_after + timedelta(minutes=1)
    webhook = await data.webhook(receiver.url(200))
    pending_old = await data.message(age=old)
    pending_other_client = await data.message(client_id="client-b", age=old)
    stalled = await data.message(status=MessageStatus.DELIVERING, age=stalled_age)
    await data.message(age=timedelta(seconds=5))  # pending, but recently: its task is probably queued
    await data.message(status=MessageStatus.DELIVERING, age=old)  # delivering, not yet stalled
    await data.message(status=MessageStatus.DELIVERED, age=timedelta(days=1))
    await data.message(status=MessageStatus.FAILED, age=timedelta(days=1))
    stalled_with_history = await data.message(status=MessageStatus.DELIVERING, age=stalled_age)
    await data.delivery(stalled_with_history, webhook, 1, succeeded=True)

    count = await service.requeue_stranded()

    mine = {pending_old.id, pending_other_client.id, stalled.id}
    assert mine <= set(queue.fan_outs)
    assert stalled_with_history.id not in queue.fan_outs
    # Oldest first; anything else found was committed by another test (e.g. the end-to-end one).
    ordered = [message_id for message_id in queue.fan_outs if message_id in mine]
    assert ordered == [stalled.id, pending_old.id, pending_other_client.id]
    assert count == len(queue.fan_outs) + len(queue.retries)
    assert receiver.requests == []  # it only queues


async def test_requeue_stranded_requeues_overdue_retries(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    overdue_at = utcnow() - POLICY.stalled_after - timedelta(minutes=1)
    webhook, other = await data.webhook(receiver.url(200)), await data.webhook(receiver.url(200))
    message = await data.message(status=MessageStatus.DELIVERING, age=timedelta(hours=1))
    lost = await data.delivery(message, webhook, 2, next_attempt_at=overdue_at)
    # Superseded by a later attempt (recorded late, after housekeeping's threshold): not lost.
    await data.delivery(message, other, 1, next_attempt_at=overdue_at, last_attempt=POLICY.max_attempts)
    await service.retry(message.id, other.id, 2, POLICY.max_attempts)
    # Due soon, or only just due: its task is presumably still on the way.
    second = await data.message(status=MessageStatus.DELIVERING, age=timedelta(hours=1))
    await data.delivery(second, webhook, 1, next_attempt_at=utcnow() + timedelta(seconds=30))
    await data.delivery(second, other, 1, next_attempt_at=utcnow() - timedelta(seconds=30))

    count = await service.requeue_stranded()

    ours = [call for call in queue.retries if call.message_id in (message.id, second.id)]
    # No budget stored (lost before the column was written): the first series' budget.
    assert ours == [RetryCall(message.id, lost.webhook_id, 3, POLICY.max_attempts, 0)]
    assert count == len(queue.fan_outs) + len(queue.retries)


async def test_the_workers_sweep_requeues_retries_overdue_by_its_shorter_period(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    """The sweep passes the claim lease: a retry whose task died with its worker comes back within seconds."""
    lease = timedelta(seconds=15)
    webhook, other = await data.webhook(receiver.url(200)), await data.webhook(receiver.url(200))
    message = await data.message(status=MessageStatus.DELIVERING, age=timedelta(minutes=5))
    await data.delivery(message, webhook, 1, next_attempt_at=utcnow() - lease - timedelta(seconds=5), last_attempt=4)
    await data.delivery(message, other, 1, next_attempt_at=utcnow() - lease + timedelta(seconds=5), last_attempt=4)

    await service.requeue_stranded(pending_after=lease, overdue_after=lease)

    ours = [call for call in queue.retries if call.message_id == message.id]
    assert ours == [RetryCall(message.id, webhook.id, 2, 4, 0)]  # not the one overdue by less than the lease


async def test_a_lost_redelivery_is_requeued_with_its_full_budget(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    webhook = await data.webhook(receiver.url(200))
    message = await data.message(status=MessageStatus.DELIVERING, age=timedelta(hours=1))
    await data.delivery(message, webhook, POLICY.max_attempts)  # the first series is spent
    # Re-delivered: a new series of max_attempts attempts, whose first task was lost.
    latest = await data.deliveries.latest_per_webhook(message.id)
    overdue_at = utcnow() - POLICY.stalled_after - timedelta(minutes=1)
    await data.deliveries.schedule_redelivery(latest, overdue_at, POLICY.max_attempts)
    await data.session.commit()

    await service.requeue_stranded()

    ours = [call for call in queue.retries if call.message_id == message.id]
    attempt = POLICY.max_attempts + 1
    assert ours == [RetryCall(message.id, webhook.id, attempt, attempt + POLICY.max_attempts - 1, 0)]


async def test_requeue_stranded_twice_requeues_each_once(
    service: DeliveryService, data: Data, queue: RecordingQueue, receiver: Receiver
) -> None:
    """While the queue has a backlog, later runs must not publish the same work again (duplicate retries
    could run concurrently and POST twice)."""
    webhook = await data.webhook(receiver.url(200))
    pending = await data.message(age=POLICY.requeue_after + timedelta(seconds=5))
    stalled = await data.message(status=MessageStatus.DELIVERING, age=POLICY.stalled_after + timedelta(minutes=1))
    retried = await data.message(status=MessageStatus.DELIVERING, age=timedelta(hours=1))
    overdue_at = utcnow() - POLICY.stalled_after - timedelta(minutes=1)
    lost = await data.delivery(retried, webhook, 1, next_attempt_at=overdue_at, last_attempt=POLICY.max_attempts)
    before = utcnow()

    await service.requeue_stranded()
    await service.requeue_stranded()

    ours = {pending.id, stalled.id}
    assert sorted(m for m in queue.fan_outs if m in ours) == sorted(ours)
    assert [call for call in queue.retries if call.message_id == retried.id] == [
        RetryCall(retried.id, webhook.id, 2, POLICY.max_attempts, 0)
    ]
    # Stranded again only after requeue_after (messages) or stalled_after (retries), counting from now.
    for message in (pending, stalled):
        stored = await data.stored(message)
        assert stored.updated_at >= before
        assert stored.status == MessageStatus.PENDING  # so that the re-queued fan-out can claim it
    (rescheduled,) = await data.attempts(retried)
    assert rescheduled.id == lost.id
    assert rescheduled.next_attempt_at is not None
    assert rescheduled.next_attempt_at >= before
    assert rescheduled.last_attempt == POLICY.max_attempts

    # The re-queued fan-out of the stalled message does run.
    await service.fan_out(stalled.id)
    assert [r.headers["webhook-id"] for r in receiver.to(webhook.url)] == [str(stalled.id)]
    assert await data.status(stalled) == MessageStatus.DELIVERED


async def test_requeue_stranded_with_nothing_to_do(service: DeliveryService, queue: RecordingQueue, data: Data) -> None:
    fresh = await data.message()
    count = await service.requeue_stranded()
    assert fresh.id not in queue.fan_outs
    assert count == len(queue.fan_outs) + len(queue.retries)


async def test_purge_deliveries_removes_rows_past_retention(service: DeliveryService, data: Data) -> None:
    webhook = await data.webhook("https://example.com/")
    message = await data.message(status=MessageStatus.FAILED, age=timedelta(days=40))
    expired = await data.delivery(message, webhook, 1, age=POLICY.retention + timedelta(hours=1))
    kept = [
        await data.delivery(message, webhook, 2, age=POLICY.retention - timedelta(hours=1)),
        await data.delivery(message, webhook, 3),
    ]

    purged = await service.purge_deliveries()

    assert purged == 1
    remaining = {d.id for d in await data.deliveries.all_by(message_id=message.id)}
    assert remaining == {d.id for d in kept}
    assert expired.id not in remaining
    assert await data.messages.first_or_default(message.id) is not None  # messages stay
    assert await service.purge_deliveries() == 0


async def test_purge_deliveries_deletes_one_bounded_batch_per_run(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue, data: Data
) -> None:
    service = DeliveryService(db_session, webhook_client, queue, replace(POLICY, purge_batch=2))
    webhook = await data.webhook("https://example.com/")
    message = await data.message(status=MessageStatus.FAILED, age=timedelta(days=40))
    old = POLICY.retention + timedelta(hours=1)
    for attempt in range(1, 6):
        await data.delivery(message, webhook, attempt, age=old)
    kept = await data.delivery(message, webhook, 6)

    # Never a loop that could outlive the task's time limit: the backlog goes over the next runs.
    assert [await service.purge_deliveries() for _ in range(4)] == [2, 2, 1, 0]

    assert [d.id for d in await data.attempts(message)] == [kept.id]


# ---- summarise ---------------------------------------------------------------------------------


def _attempt(succeeded: bool, retry_scheduled: bool = False) -> Delivery:
    return Delivery(
        message_id=uuid.uuid4(),
        webhook_id=uuid.uuid4(),
        attempt=1,
        status=DeliveryStatus.SUCCEEDED if succeeded else DeliveryStatus.FAILED,
        duration_ms=1,
        next_attempt_at=utcnow() if retry_scheduled else None,
    )


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        ([], MessageStatus.DELIVERED),
        ([_attempt(True)], MessageStatus.DELIVERED),
        ([_attempt(True), _attempt(True)], MessageStatus.DELIVERED),
        ([_attempt(False)], MessageStatus.FAILED),
        ([_attempt(False), _attempt(False)], MessageStatus.FAILED),
        ([_attempt(True), _attempt(False)], MessageStatus.PARTIALLY_FAILED),
        ([_attempt(True), _attempt(False, retry_scheduled=True)], MessageStatus.DELIVERING),
        ([_attempt(False), _attempt(False, retry_scheduled=True)], MessageStatus.DELIVERING),
    ],
    ids=["none", "one-ok", "all-ok", "one-failed", "all-failed", "mixed", "retrying", "failed-and-retrying"],
)
def test_summarise(latest: list[Delivery], expected: MessageStatus) -> None:
    assert summarise(latest) == expected


def test_policy_from_settings(settings: Settings) -> None:
    policy = DeliveryPolicy.from_settings(settings)
    assert policy.max_attempts == settings.WEBHOOK_MAX_ATTEMPTS
    assert policy.retry_after_max_seconds == settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS
    assert policy.requeue_after == timedelta(seconds=settings.MESSAGE_REQUEUE_AFTER_SECONDS)
    assert policy.retention == timedelta(days=settings.DELIVERY_RETENTION_DAYS)
    # A fan-out is only presumed dead once its task's hard time limit has passed.
    assert policy.stalled_after > timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT_SECONDS)


class RacingClient(WebhookClient):
    """While this worker is sending, a duplicate task on another worker records the same attempt."""

    def __init__(self, inner: WebhookClient, race: Callable[[], Awaitable[None]]) -> None:
        super().__init__(inner.guard, inner.keyring)
        self.race = race

    async def deliver(
        self, url: str, secrets: Sequence[Sealed], message: WebhookMessage, timeout_seconds: float
    ) -> DeliveryOutcome:
        outcome = await super().deliver(url, secrets, message, timeout_seconds)
        await self.race()
        return outcome


async def test_concurrent_duplicate_retries_record_the_attempt_once(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    webhook = await data.webhook(receiver.url(500))
    message = await data.message()
    await DeliveryService(db_session, webhook_client, queue, POLICY).fan_out(message.id)
    queue.retries.clear()

    async def other_worker_records_attempt_2() -> None:
        await data.delivery(message, webhook, 2, next_attempt_at=utcnow() + timedelta(seconds=1))

    racing = DeliveryService(db_session, RacingClient(webhook_client, other_worker_records_attempt_2), queue, POLICY)
    await racing.retry(message.id, webhook.id, 2, 3)

    assert [d.attempt for d in await data.attempts(message)] == [1, 2]
    assert queue.retries == []  # the worker that recorded attempt 2 scheduled attempt 3, not this one
    assert await data.status(message) == MessageStatus.DELIVERING


# ---- recording cost ------------------------------------------------------------------------------


def _inserts_into_deliveries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("INSERT INTO DELIVERIES")]


async def test_a_fan_out_costs_the_same_statements_for_any_number_of_webhooks(
    service: DeliveryService, data: Data, receiver: Receiver, statements: list[str]
) -> None:
    """One multi-row INSERT for every attempt, nothing read back per row: the statement count does not grow."""
    sent: dict[int, list[str]] = {}
    for webhooks, client_id in ((1, "client-one"), (8, "client-eight")):
        for _ in range(webhooks):
            await data.webhook(receiver.url(200), client_id=client_id)
        message = await data.message(client_id=client_id)
        statements.clear()

        await service.fan_out(message.id)

        assert len(await data.attempts(message)) == webhooks
        sent[webhooks] = list(statements)

    assert len(_inserts_into_deliveries(sent[8])) == 1
    assert len(sent[8]) == len(sent[1]), sent[8]


async def test_retries_of_a_fan_out_record_in_one_insert_and_clear_earlier_marks_in_one_update(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue, statements: list[str]
) -> None:
    webhooks = [await data.webhook(receiver.url(503, 503)) for _ in range(4)]
    message = await data.message()
    await service.fan_out(message.id)
    assert len(queue.retries) == 4  # one publish per retry, each with its own delay

    statements.clear()
    await service.retry(message.id, webhooks[0].id, 2, POLICY.max_attempts)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE DELIVERIES")]
    assert len(updates) == 1  # attempt 1's mark cleared
    assert len(_inserts_into_deliveries(statements)) == 1


# ---- claims, takeover and deferral ---------------------------------------------------------------


async def test_a_fan_out_claims_its_message_and_releases_the_claim_when_every_attempt_is_recorded(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    seen: list[Message] = []

    class Spy(WebhookClient):
        async def deliver(
            self, url: str, secrets: Sequence[Sealed], message: WebhookMessage, timeout_seconds: float
        ) -> Any:
            row = await MessagesTable(db_session).first_or_default(uuid.UUID(message.id))
            assert row is not None
            seen.append(Message.model_validate(row.model_dump()))
            return await super().deliver(url, secrets, message, timeout_seconds)

    webhook = await data.webhook(receiver.url(200))
    message = await data.message()
    before = utcnow()

    await DeliveryService(db_session, Spy(webhook_client.guard, webhook_client.keyring), queue, POLICY).fan_out(
        message.id
    )

    (during,) = seen
    assert during.status == MessageStatus.DELIVERING
    assert during.claim_token is not None
    assert during.claimed_until is not None
    assert before + POLICY.claim_lease <= during.claimed_until <= utcnow() + POLICY.claim_lease
    assert during.unattempted_webhook_ids == [webhook.id]
    after = await data.stored(message)
    assert (after.status, after.claim_token, after.claimed_until, after.unattempted_webhook_ids) == (
        MessageStatus.DELIVERED,
        None,
        None,
        None,
    )


async def test_a_lapsed_claim_is_taken_over_and_only_the_unattempted_webhooks_are_sent_to(
    service: DeliveryService, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    """The worker died mid-fan-out: one attempt recorded, two not; its lease lapsed."""
    done, left, gone = [await data.webhook(receiver.url(200)) for _ in range(3)]
    assert await data.webhooks.soft_delete(gone.id)
    message = await data.message(
        status=MessageStatus.DELIVERING,
        claim_token=uuid.uuid4(),
        claimed_until=utcnow() - timedelta(seconds=1),
        unattempted_webhook_ids=[left.id, gone.id],
    )
    await data.delivery(message, done, 1, succeeded=True)
    unexpired = await data.message(
        status=MessageStatus.DELIVERING,
        claim_token=uuid.uuid4(),
        claimed_until=utcnow() + timedelta(minutes=1),
        unattempted_webhook_ids=[left.id],
    )
    before = utcnow()

    assert await service.take_over_lapsed() >= 1

    assert message.id in queue.fan_outs
    assert unexpired.id not in queue.fan_outs
    leased = await data.stored(message)
    assert leased.claim_token is None  # nobody holds it until the re-queued fan-out runs
    assert leased.claimed_until is not None
    assert leased.claimed_until >= before + POLICY.claim_lease  # other sweeps leave it alone meanwhile
    await service.take_over_lapsed()
    assert queue.fan_outs.count(message.id) == 1

    await service.fan_out(message.id)

    assert receiver.to(done.url) == []
    assert [r.headers["webhook-id"] for r in receiver.to(left.url)] == [str(message.id)]
    assert receiver.to(gone.url) == []
    attempts = {d.webhook_id: d for d in await data.attempts(message)}
    assert attempts[left.id].status == DeliveryStatus.SUCCEEDED
    assert attempts[gone.id].error == "webhook deleted"
    final = await data.stored(message)
    assert final.status == MessageStatus.PARTIALLY_FAILED
    assert (final.claim_token, final.claimed_until, final.unattempted_webhook_ids) == (None, None, None)


async def test_a_held_claim_is_left_to_its_holder_unless_the_broker_redelivered_the_task(
    service: DeliveryService, data: Data, receiver: Receiver
) -> None:
    webhook = await data.webhook(receiver.url(200))
    message = await data.message(
        status=MessageStatus.DELIVERING,
        claim_token=uuid.uuid4(),
        claimed_until=utcnow() + timedelta(minutes=1),
        unattempted_webhook_ids=[webhook.id],
    )

    await service.fan_out(message.id)  # a duplicate task: another worker delivers it right now
    assert receiver.requests == []

    await service.fan_out(message.id, redelivered=True)  # that worker died: Celery gave its task back
    assert len(receiver.to(webhook.url)) == 1
    assert await data.status(message) == MessageStatus.DELIVERED


async def test_a_fan_out_defers_a_slow_endpoint_and_records_the_others_without_waiting(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    limits = DeliveryLimits(total=100, per_endpoint=4, slow_after=0.2)
    service = DeliveryService(db_session, webhook_client, queue, POLICY, limits)
    fast = await data.webhook(receiver.url(200))
    slow = await data.webhook(receiver.url(Answer(200, delay=0.6)))
    first, second = await data.message(), await data.message()

    await service.fan_out(first.id)  # nothing known about the endpoints yet: both attempted
    assert limits.is_slow(slow.url)
    started = asyncio.get_running_loop().time()
    await service.fan_out(second.id)
    elapsed = asyncio.get_running_loop().time() - started

    assert elapsed < 0.6  # did not wait for the slow endpoint
    assert [d.webhook_id for d in await data.attempts(second)] == [fast.id]
    deferred = await data.stored(second)
    assert deferred.status == MessageStatus.DELIVERING
    assert deferred.unattempted_webhook_ids == [slow.id]
    assert deferred.claim_token is None  # no holder: the sweep hands it out when due
    assert deferred.claimed_until is not None
    assert [r.headers["webhook-id"] for r in receiver.to(slow.url)] == [str(first.id)]

    await service.fan_out(second.id)  # handed out again (take_over_lapsed, once due): it waits its turn now

    assert [r.headers["webhook-id"] for r in receiver.to(slow.url)] == [str(first.id), str(second.id)]
    assert len(receiver.to(fast.url)) == 2
    final = await data.stored(second)
    assert (final.status, final.claimed_until, final.unattempted_webhook_ids) == (MessageStatus.DELIVERED, None, None)


async def test_a_first_attempt_in_line_behind_an_endpoint_that_turns_slow_is_deferred(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    limits = DeliveryLimits(total=100, per_endpoint=1, slow_after=0.2)
    service = DeliveryService(db_session, webhook_client, queue, POLICY, limits)
    fast = await data.webhook(receiver.url(200))
    slow = await data.webhook(receiver.url(200))
    message = await data.message()

    async def hold(seconds: float) -> None:  # another task's attempt, not yet known to be slow
        async with limits.slot(slow.url):
            await asyncio.sleep(seconds)

    holder = asyncio.create_task(hold(1.0))
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    await service.fan_out(message.id)
    elapsed = asyncio.get_running_loop().time() - started
    await holder

    assert elapsed < 0.6  # left the line once the attempt ahead had taken 0.2 s, not after its 1 s
    assert receiver.to(slow.url) == []
    assert [d.webhook_id for d in await data.attempts(message)] == [fast.id]
    deferred = await data.stored(message)
    assert (deferred.status, deferred.unattempted_webhook_ids) == (MessageStatus.DELIVERING, [slow.id])


async def test_a_retry_to_a_congested_endpoint_is_postponed_not_attempted(
    db_session: AsyncSession, webhook_client: WebhookClient, data: Data, receiver: Receiver, queue: RecordingQueue
) -> None:
    limits = DeliveryLimits(total=100, per_endpoint=1, slow_after=0.1)
    service = DeliveryService(db_session, webhook_client, queue, POLICY, limits)
    webhook = await data.webhook(receiver.url(503))
    message = await data.message()
    await service.fan_out(message.id)
    queue.retries.clear()

    async def hold(seconds: float) -> None:
        async with limits.slot(webhook.url):
            await asyncio.sleep(seconds)

    # Another task's attempt is in flight for long, and one more waits in line: the line is full.
    holders = [asyncio.create_task(hold(0.5)), asyncio.create_task(hold(0))]
    await asyncio.sleep(0.2)
    before = utcnow()
    await service.retry(message.id, webhook.id, 2, POLICY.max_attempts)
    await asyncio.gather(*holders)

    assert len(receiver.to(webhook.url)) == 1  # not sent
    assert [d.attempt for d in await data.attempts(message)] == [1]
    (call,) = queue.retries
    assert (call.webhook_id, call.attempt, call.last_attempt) == (webhook.id, 2, POLICY.max_attempts)
    assert call.delay > 0
    (mark,) = await data.attempts(message)
    assert mark.next_attempt_at is not None
    assert mark.next_attempt_at >= before + timedelta(seconds=call.delay) - timedelta(seconds=1)
