"""MessagingService paths the HTTP tests cannot reach deterministically: the idempotency race, and
how re-delivery reads the message."""

import uuid
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.models import MessageCreate
from app.api.messaging.service import MessagingService, request_hash
from app.core.exceptions import ConflictError, NotFoundError
from app.db.delivery.model import Delivery
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from tests.support.factories import create_delivery, create_message, create_webhook
from tests.support.fakes import RecordingQueue


@pytest.fixture
def service(db_session: AsyncSession, queue: RecordingQueue) -> MessagingService:
    return MessagingService(db_session, queue, max_attempts=5)


def lose_the_race(monkeypatch: pytest.MonkeyPatch, service: MessagingService) -> None:
    """The first idempotency lookup misses: the other request committed just after it looked."""
    lookup = service.messages.first_by
    calls = 0

    async def stale_then_fresh(**filters: Any) -> Message | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await lookup(**filters)

    monkeypatch.setattr(service.messages, "first_by", stale_then_fresh)


async def test_losing_a_concurrent_create_returns_the_winners_message(
    service: MessagingService, queue: RecordingQueue, db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = MessageCreate(event="order.created", payload={"n": 1})
    winner = await service.create("client-a", data, "same-key")
    queue.fan_outs.clear()
    lose_the_race(monkeypatch, service)

    loser = await service.create("client-a", data, "same-key")

    assert loser.id == winner.id
    assert queue.fan_outs == []
    assert await MessagesTable(db_session).all_count(client_id="client-a") == 1


async def test_losing_a_concurrent_create_with_another_body_is_a_conflict(
    service: MessagingService, queue: RecordingQueue, db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.create("client-a", MessageCreate(event="order.created", payload={"n": 1}), "same-key")
    lose_the_race(monkeypatch, service)

    with pytest.raises(ConflictError):
        await service.create("client-a", MessageCreate(event="order.created", payload={"n": 2}), "same-key")

    assert len(queue.fan_outs) == 1
    # The session is still usable after the failed insert (it ran in a savepoint).
    assert await MessagesTable(db_session).all_count(client_id="client-a") == 1


def test_request_hash_ignores_key_order_but_not_values() -> None:
    a = MessageCreate(event="a.b", payload={"x": 1, "y": [1, 2]})
    b = MessageCreate(event="a.b", payload={"y": [1, 2], "x": 1})
    assert request_hash(a) == request_hash(b)
    assert request_hash(a) != request_hash(MessageCreate(event="a.b", payload={"x": 1, "y": [2, 1]}))
    assert request_hash(a) != request_hash(MessageCreate(event="a.c", payload={"x": 1, "y": [1, 2]}))


async def test_an_integrity_error_without_idempotency_key_is_not_answered_with_another_message(
    service: MessagingService, queue: RecordingQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A keyless message exists: a lookup by `idempotency_key IS NULL` would find it and answer 409.
    await service.create("client-a", MessageCreate(event="order.created", payload={"n": 1}), None)
    queue.fan_outs.clear()

    async def violates_a_constraint(model: Message) -> Message:
        raise IntegrityError("INSERT INTO messages ...", {}, Exception("a constraint other than the key's"))

    monkeypatch.setattr(service.messages, "insert_model", violates_a_constraint)

    with pytest.raises(IntegrityError):
        await service.create("client-a", MessageCreate(event="order.created", payload={"n": 2}), None)
    assert queue.fan_outs == []


# ---- redeliver ---------------------------------------------------------------------------------


async def failed_message(session: AsyncSession, client_id: str = "client-a") -> tuple[Message, Delivery]:
    """A message whose only delivery attempt failed, written straight into the tables as the worker would."""
    webhook = await create_webhook(session, client_id=client_id)
    message = await create_message(session, client_id=client_id, status=MessageStatus.FAILED)
    delivery = await create_delivery(session, message_id=message.id, webhook_id=webhook.id)
    await session.commit()
    return message, delivery


def reads_of_messages_before_writing(statements: list[str]) -> list[str]:
    """The SELECTs from messages that ran before the first write (after it, a write's refresh reads too)."""
    reads = []
    for statement in statements:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("UPDATE", "INSERT", "DELETE"):
            break
        if verb == "SELECT" and "FROM messages" in statement:
            reads.append(statement)
    return reads


async def test_redeliver_reads_the_message_once_and_locked(
    service: MessagingService, queue: RecordingQueue, db_session: AsyncSession, statements: list[str]
) -> None:
    message, delivery = await failed_message(db_session)
    statements.clear()

    redelivered = await service.redeliver("client-a", message.id)

    assert redelivered.status == MessageStatus.DELIVERING
    reads = reads_of_messages_before_writing(statements)
    assert len(reads) == 1, reads
    assert "FOR UPDATE" in reads[0]
    assert [(call.webhook_id, call.attempt) for call in queue.retries] == [(delivery.webhook_id, 2)]
    await db_session.refresh(delivery)
    assert delivery.next_attempt_at is not None


@pytest.mark.parametrize("owner", ["client-b", None], ids=["another-client", "unknown"])
async def test_redeliver_someone_elses_or_an_unknown_message_is_not_found(
    service: MessagingService, queue: RecordingQueue, db_session: AsyncSession, owner: str | None
) -> None:
    message_id = (await failed_message(db_session, owner))[0].id if owner else uuid.uuid4()

    with pytest.raises(NotFoundError):
        await service.redeliver("client-a", message_id)

    assert queue.retries == []
    if owner:
        stored = await MessagesTable(db_session).first_or_default(message_id)
        assert stored is not None
        assert stored.status == MessageStatus.FAILED


@pytest.mark.parametrize(("key", "savepoints"), [(None, 0), ("a-key", 1)])
async def test_only_a_create_with_an_idempotency_key_needs_a_savepoint(
    service: MessagingService, statements: list[str], key: str | None, savepoints: int
) -> None:
    await service.create("client-a", MessageCreate(event="order.created", payload={"n": 1}), key)

    # The test session's own transaction is a savepoint of the test's (conftest.db_session): one more.
    assert sum(sql.startswith("SAVEPOINT") for sql in statements) == 1 + savepoints, statements
