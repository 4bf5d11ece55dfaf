"""Retention: finished messages are purged once past MESSAGE_RETENTION_DAYS, one bounded batch per run, with
their deliveries; unfinished ones never. An Idempotency-Key is honoured for its period, then free again."""

from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import DeliveryService
from app.api.messaging.models import MessageCreate
from app.api.messaging.service import MessagingService
from app.clients.webhooks.client import WebhookClient
from app.core.config import Settings
from app.core.time import utcnow
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from app.worker.celery_app import create_celery_app
from app.worker.tasks import PURGE_MESSAGES_TASK
from tests.support.factories import create_delivery, create_message, create_webhook
from tests.support.fakes import RecordingQueue
from tests.support.tokens import HeadersFactory

POLICY = replace(DeliveryPolicy.from_settings(Settings(_env_file=None)), message_retention=timedelta(days=30))
OLD = POLICY.message_retention + timedelta(hours=1)


async def message_aged(session: AsyncSession, status: MessageStatus, age: timedelta) -> Message:
    at = utcnow() - age
    return await create_message(session, status=status, created_at=at - timedelta(minutes=5), updated_at=at)


async def ids_of(session: AsyncSession) -> set[object]:
    return {m.id for m in await MessagesTable(session).all_by(client_id="client-a")}


async def test_finished_messages_past_retention_are_purged_with_their_deliveries(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue
) -> None:
    webhook = await create_webhook(db_session)
    finished = (MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.PARTIALLY_FAILED)
    expired = [await message_aged(db_session, status, OLD) for status in finished]
    await create_delivery(db_session, message_id=expired[0].id, webhook_id=webhook.id)
    kept = [
        await message_aged(db_session, MessageStatus.DELIVERED, POLICY.message_retention - timedelta(hours=1)),
        # Unfinished ones stay, however old: housekeeping still has to deliver them.
        await message_aged(db_session, MessageStatus.PENDING, OLD),
        await message_aged(db_session, MessageStatus.DELIVERING, OLD),
    ]
    await db_session.commit()
    service = DeliveryService(db_session, webhook_client, queue, POLICY)

    assert await service.purge_messages() == 3

    assert await ids_of(db_session) == {m.id for m in kept}
    assert await DeliveriesTable(db_session).all_by(message_id=expired[0].id) == []
    assert await service.purge_messages() == 0


async def test_one_bounded_batch_per_run(
    db_session: AsyncSession, webhook_client: WebhookClient, queue: RecordingQueue
) -> None:
    for _ in range(5):
        await message_aged(db_session, MessageStatus.DELIVERED, OLD)
    await db_session.commit()
    service = DeliveryService(db_session, webhook_client, queue, replace(POLICY, message_purge_batch=2))

    # Never a loop that could outlive the task's time limit: the backlog goes over the next runs.
    assert [await service.purge_messages() for _ in range(4)] == [2, 2, 1, 0]


def test_beat_purges_messages_every_housekeeping_interval(settings: Settings) -> None:
    schedule = create_celery_app(settings).conf.beat_schedule

    assert schedule["purge-messages"] == {
        "task": PURGE_MESSAGES_TASK,
        "schedule": settings.CELERY_HOUSEKEEPING_INTERVAL_SECONDS,
    }


async def test_the_purge_reads_the_finished_messages_index(db_session: AsyncSession) -> None:
    statement = text(
        "EXPLAIN (FORMAT JSON) SELECT id FROM messages WHERE status IN ('delivered', 'failed', 'partially_failed')"
        " AND updated_at < now() - interval '30 days' ORDER BY updated_at LIMIT 1000"
    )
    await db_session.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table: ask which index serves

    plan = str((await db_session.execute(statement)).scalar_one())

    assert "messages_finished_idx" in plan


# ---- idempotency keys ----------------------------------------------------------------------------


@pytest.fixture
def messaging(db_session: AsyncSession, queue: RecordingQueue) -> MessagingService:
    return MessagingService(db_session, queue, max_attempts=5, idempotency_key_ttl=timedelta(hours=24))


async def test_a_key_is_honoured_within_its_period(messaging: MessagingService, db_session: AsyncSession) -> None:
    data = MessageCreate(event="order.created", payload={"n": 1})
    first = await messaging.create("client-a", data, "key-1")
    await db_session.execute(
        text("UPDATE messages SET created_at = now() - interval '23 hours' WHERE id = :id"), {"id": first.id}
    )

    again = await messaging.create("client-a", data, "key-1")

    assert again.id == first.id


async def test_a_key_past_its_period_names_a_new_message(messaging: MessagingService, db_session: AsyncSession) -> None:
    first = await messaging.create("client-a", MessageCreate(event="order.created", payload={"n": 1}), "key-1")
    await db_session.execute(
        text("UPDATE messages SET created_at = now() - interval '25 hours' WHERE id = :id"), {"id": first.id}
    )

    # Another body, even: the old request is forgotten.
    second = await messaging.create("client-a", MessageCreate(event="order.paid", payload={"n": 2}), "key-1")
    replayed = await messaging.create("client-a", MessageCreate(event="order.paid", payload={"n": 2}), "key-1")

    assert second.id != first.id
    assert replayed.id == second.id
    old = await MessagesTable(db_session).first_or_default(first.id)
    assert old is not None
    assert (old.idempotency_key, old.request_hash) == (None, None)  # the old message stays, without its key


async def test_the_api_takes_the_key_period_from_settings(
    client: httpx.AsyncClient, headers_for: HeadersFactory, db_session: AsyncSession, settings: Settings
) -> None:
    headers = {**headers_for(), "Idempotency-Key": "api-key-1"}
    body = {"event": "order.created", "payload": {}}
    first = (await client.post("/api/v1/messages", json=body, headers=headers)).json()
    hours = settings.IDEMPOTENCY_KEY_TTL_HOURS + 1
    await db_session.execute(
        text("UPDATE messages SET created_at = now() - make_interval(hours => :hours) WHERE id = :id"),
        {"hours": int(hours), "id": first["id"]},
    )

    second = (await client.post("/api/v1/messages", json=body, headers=headers)).json()

    assert second["id"] != first["id"]
