"""Endpoint health against a real receiver and the real database: 410 Gone disables a webhook at once, a long
failing streak disables it too, a disabled webhook is sent nothing (its messages are recorded as not sent, so
they can be redelivered), and PATCH {"active": true} brings it back."""

from dataclasses import replace
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import WEBHOOK_DISABLED, DeliveryService
from app.api.messaging.endpoint_health import Verdict, verdict
from app.api.messaging.service import MessagingService
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import DeliveryOutcome
from app.core.config import Settings
from app.core.time import utcnow
from app.db.delivery.model import Delivery, DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from app.db.webhook.model import DisabledReason, Webhook
from app.db.webhook.table import WebhooksTable
from tests.support.factories import create_message, create_webhook
from tests.support.fakes import RecordingQueue
from tests.support.receiver import Receiver

POLICY = replace(DeliveryPolicy.from_settings(Settings(_env_file=None)), max_attempts=1, timeout_seconds=2.0)
FIVE_DAYS = timedelta(days=5)


def delivery_service(session: AsyncSession, client: WebhookClient, queue: RecordingQueue) -> DeliveryService:
    return DeliveryService(session, client, queue, POLICY)


async def stored(session: AsyncSession, webhook: Webhook) -> Webhook:
    row = await WebhooksTable(session).first_by(id=webhook.id, include_deleted=True)
    assert row is not None
    await session.refresh(row)
    return row


async def attempts_of(session: AsyncSession, message: Message) -> list[Delivery]:
    return await DeliveriesTable(session).all_by(message_id=message.id)


async def status_of(session: AsyncSession, message: Message) -> MessageStatus:
    row = await MessagesTable(session).lock(message.id)
    assert row is not None
    return row.status


async def new_message(session: AsyncSession) -> Message:
    message = await create_message(session)
    await session.commit()
    return message


def assert_recent(moment: datetime | None) -> None:
    assert moment is not None
    assert utcnow() - timedelta(minutes=1) < moment <= utcnow()


async def test_410_gone_disables_the_webhook_at_once_and_it_is_sent_nothing_more(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue, receiver: Receiver
) -> None:
    gone = await create_webhook(db_session, url=receiver.url(410))
    healthy = await create_webhook(db_session, url=receiver.url(200))
    service = delivery_service(db_session, webhook_client, queue)
    first = await new_message(db_session)

    await service.fan_out(first.id)

    disabled = await stored(db_session, gone)
    assert (disabled.active, disabled.disabled_reason) == (False, DisabledReason.GONE)
    assert_recent(disabled.disabled_at)
    assert (await stored(db_session, healthy)).active is True
    assert queue.retries == []  # 410 is final

    second = await new_message(db_session)
    await service.fan_out(second.id)

    assert len(receiver.to(gone.url)) == 1  # the first message only
    assert len(receiver.to(healthy.url)) == 2
    not_sent = next(d for d in await attempts_of(db_session, second) if d.webhook_id == gone.id)
    assert (not_sent.status, not_sent.response_status, not_sent.error) == (
        DeliveryStatus.FAILED,
        None,
        WEBHOOK_DISABLED.error,
    )
    assert await status_of(db_session, second) == MessageStatus.PARTIALLY_FAILED  # recorded, not lost


async def test_an_endpoint_failing_every_attempt_for_the_period_is_disabled(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue, receiver: Receiver
) -> None:
    long_failing = await create_webhook(
        db_session, url=receiver.url(500), failing_since=utcnow() - FIVE_DAYS - timedelta(minutes=1)
    )
    recently_failing_since = utcnow() - FIVE_DAYS + timedelta(hours=1)
    recently_failing = await create_webhook(db_session, url=receiver.url(500), failing_since=recently_failing_since)
    service = delivery_service(db_session, webhook_client, queue)

    await service.fan_out((await new_message(db_session)).id)

    disabled = await stored(db_session, long_failing)
    assert (disabled.active, disabled.disabled_reason) == (False, DisabledReason.FAILING)
    still = await stored(db_session, recently_failing)
    assert (still.active, still.failing_since) == (True, recently_failing_since)


async def test_a_failure_starts_the_streak_and_a_success_ends_it(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue, receiver: Receiver
) -> None:
    webhook = await create_webhook(db_session, url=receiver.url(503, 503, 200))
    service = delivery_service(db_session, webhook_client, queue)

    await service.fan_out((await new_message(db_session)).id)
    started = (await stored(db_session, webhook)).failing_since
    assert_recent(started)
    await service.fan_out((await new_message(db_session)).id)
    assert (await stored(db_session, webhook)).failing_since == started  # the streak goes on from its start
    await service.fan_out((await new_message(db_session)).id)

    healed = await stored(db_session, webhook)
    assert (healed.active, healed.failing_since) == (True, None)


async def test_a_message_that_never_reached_the_endpoint_says_nothing_about_it(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue, receiver: Receiver
) -> None:
    # A malformed signing secret fails the attempt on our side: the endpoint was never called.
    webhook = await create_webhook(
        db_session, url=receiver.url(200), secret="whsec_not*base64!", failing_since=utcnow() - FIVE_DAYS * 2
    )

    await delivery_service(db_session, webhook_client, queue).fan_out((await new_message(db_session)).id)

    assert (await stored(db_session, webhook)).active is True


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (DeliveryOutcome(succeeded=True, retryable=False, response_status=204, duration_ms=1), Verdict.HEALTHY),
        (DeliveryOutcome(succeeded=False, retryable=False, response_status=410, duration_ms=1), Verdict.GONE),
        (DeliveryOutcome(succeeded=False, retryable=False, response_status=404, duration_ms=1), Verdict.FAILING),
        (DeliveryOutcome(succeeded=False, retryable=True, response_status=429, duration_ms=1), Verdict.FAILING),
        (DeliveryOutcome(succeeded=False, retryable=True, error="connection refused", duration_ms=1), Verdict.FAILING),
    ],
)
def test_verdicts(outcome: DeliveryOutcome, expected: Verdict) -> None:
    assert verdict(outcome) is expected


async def test_a_disabled_webhook_comes_back_with_patch_and_its_missed_messages_can_be_redelivered(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    auth_headers: dict[str, str],
    webhook_client: WebhookClient,
    queue: RecordingQueue,
    receiver: Receiver,
) -> None:
    created = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url(410, 200), "events": ["order.created"]}, headers=auth_headers
    )
    webhook_id = created.json()["id"]
    service = delivery_service(db_session, webhook_client, queue)
    await service.fan_out((await new_message(db_session)).id)  # 410: disabled
    missed = await new_message(db_session)
    await service.fan_out(missed.id)  # recorded as not sent

    shown = (await client.get(f"/api/v1/webhooks/{webhook_id}", headers=auth_headers)).json()
    assert (shown["active"], shown["disabled_reason"]) == (False, "gone")
    assert_recent(datetime.fromisoformat(shown["disabled_at"]))

    enabled = await client.patch(f"/api/v1/webhooks/{webhook_id}", json={"active": True}, headers=auth_headers)

    assert enabled.status_code == 200, enabled.text
    assert {key: enabled.json()[key] for key in ("active", "disabled_reason", "disabled_at", "failing_since")} == {
        "active": True,
        "disabled_reason": None,
        "disabled_at": None,
        "failing_since": None,
    }
    # The message it missed goes out on redelivery.
    await MessagingService(db_session, queue, POLICY.max_attempts).redeliver("client-a", missed.id)
    (call,) = queue.retries
    await service.retry(call.message_id, call.webhook_id, call.attempt, call.last_attempt)
    assert len(receiver.requests) == 2
    assert await status_of(db_session, missed) == MessageStatus.DELIVERED


async def test_a_client_turning_a_webhook_off_is_recorded_as_manual(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/api/v1/webhooks", json={"url": "https://example.com/", "events": ["a.b"]}, headers=auth_headers
    )
    path = f"/api/v1/webhooks/{created.json()['id']}"

    off = (await client.patch(path, json={"active": False}, headers=auth_headers)).json()
    again = (await client.patch(path, json={"active": False}, headers=auth_headers)).json()

    assert (off["active"], off["disabled_reason"]) == (False, "manual")
    assert_recent(datetime.fromisoformat(off["disabled_at"]))
    assert again["disabled_at"] == off["disabled_at"]  # turning off what is off changes nothing
