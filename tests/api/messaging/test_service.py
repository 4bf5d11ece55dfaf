"""MessagingService paths the HTTP tests cannot reach deterministically: the idempotency race."""

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.models import MessageCreate
from app.api.messaging.service import MessagingService, request_hash
from app.core.exceptions import ConflictError
from app.db.message.model import Message
from app.db.message.table import MessagesTable
from tests.api.conftest import RecordingQueue


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
