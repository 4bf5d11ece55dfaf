"""A message's delivery attempts, and re-delivery of the failed ones."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.db.delivery.model import Delivery, DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import MessageStatus
from app.db.message.table import MessagesTable
from app.utils.time import utcnow
from tests.api.conftest import (
    BrokenQueue,
    HeadersFactory,
    MessageFactory,
    RecordingQueue,
    RetryCall,
    WebhookFactory,
)
from tests.app_helpers import assert_problem

MESSAGES = "/api/v1/messages"
FIELDS = {"id", "webhook_id", "attempt", "status", "response_status", "error", "duration_ms", "created_at"}


class History:
    """Writes delivery attempts for a message straight into the tables, as the worker would."""

    def __init__(self, session: AsyncSession, message_id: str) -> None:
        self.message_id = uuid.UUID(message_id)
        self.deliveries = DeliveriesTable(session)
        self.messages = MessagesTable(session)
        self.clock = utcnow() - timedelta(minutes=10)

    async def attempt(self, webhook_id: str, attempt: int, status: int | None, error: str | None = None) -> Delivery:
        self.clock += timedelta(seconds=1)
        succeeded = status is not None and 200 <= status < 300
        return await self.deliveries.insert_model(
            Delivery(
                message_id=self.message_id,
                webhook_id=uuid.UUID(webhook_id),
                attempt=attempt,
                status=DeliveryStatus.SUCCEEDED if succeeded else DeliveryStatus.FAILED,
                response_status=status,
                error=None if succeeded else (error or f"HTTP {status}"),
                duration_ms=12 * attempt,
                created_at=self.clock,
            )
        )

    async def status(self, status: MessageStatus) -> None:
        await self.messages.update(self.message_id, {"status": status})


@pytest.fixture
async def two_webhooks(create_webhook: WebhookFactory) -> tuple[str, str]:
    return (await create_webhook(url="https://a.example/"))["id"], (await create_webhook(url="https://b.example/"))[
        "id"
    ]


async def test_deliveries_list_every_attempt_newest_first(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    db_session: AsyncSession,
) -> None:
    a, b = two_webhooks
    message = await create_message()
    other = await create_message()
    history = History(db_session, message["id"])
    first = await history.attempt(a, 1, 503)
    second = await history.attempt(b, 1, 200)
    third = await history.attempt(a, 2, None, error="connection refused")
    fourth = await history.attempt(a, 3, 204)
    await History(db_session, other["id"]).attempt(a, 1, 200)  # another message's attempt

    response = await client.get(f"{MESSAGES}/{message['id']}/deliveries", headers=auth_headers)

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    items = body["items"]
    assert [item["id"] for item in items] == [str(d.id) for d in (fourth, third, second, first)]
    assert all(set(item) == FIELDS for item in items)
    assert items[1] == {
        "id": str(third.id),
        "webhook_id": a,
        "attempt": 2,
        "status": "failed",
        "response_status": None,
        "error": "connection refused",
        "duration_ms": 24,
        "created_at": third.created_at.isoformat().replace("+00:00", "Z"),
    }
    assert items[0]["status"] == "succeeded"
    assert items[0]["response_status"] == 204
    assert items[0]["error"] is None
    assert items[3]["error"] == "HTTP 503"


async def test_deliveries_of_a_new_message_is_empty(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory
) -> None:
    message = await create_message()
    response = await client.get(f"{MESSAGES}/{message['id']}/deliveries", headers=auth_headers)
    assert response.json() == {"items": [], "next_cursor": None}


async def test_deliveries_paginate(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    db_session: AsyncSession,
) -> None:
    message = await create_message()
    history = History(db_session, message["id"])
    attempts = [await history.attempt(two_webhooks[n % 2], n // 2 + 1, 500) for n in range(11)]
    path = f"{MESSAGES}/{message['id']}/deliveries"

    seen: list[str] = []
    sizes: list[int] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        body = (await client.get(path, params=params, headers=auth_headers)).json()
        seen += [item["id"] for item in body["items"]]
        sizes.append(len(body["items"]))
        if body["next_cursor"] is None:
            break
        params = {"limit": 4, "cursor": body["next_cursor"]}

    assert sizes == [4, 4, 3]
    assert seen == [str(d.id) for d in reversed(attempts)]


# ---- redeliver ---------------------------------------------------------------------------------


async def test_redeliver_resends_to_the_webhooks_whose_latest_attempt_failed(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    create_webhook: WebhookFactory,
    queue: RecordingQueue,
    db_session: AsyncSession,
    settings: Settings,
) -> None:
    failed_once, recovered, failed_thrice = [(await create_webhook())["id"] for _ in range(3)]
    message = await create_message()
    history = History(db_session, message["id"])
    await history.attempt(failed_once, 1, 410)
    await history.attempt(recovered, 1, 500)
    await history.attempt(recovered, 2, 200)
    await history.attempt(failed_thrice, 1, 500)
    await history.attempt(failed_thrice, 2, 500)
    latest = await history.attempt(failed_thrice, 3, 500)
    await history.status(MessageStatus.PARTIALLY_FAILED)
    queue.fan_outs.clear()

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)

    assert response.status_code == 202, response.text
    assert response.json()["id"] == message["id"]
    assert response.json()["status"] == "delivering"
    message_id = uuid.UUID(message["id"])
    budget = settings.WEBHOOK_MAX_ATTEMPTS
    assert sorted(queue.retries, key=lambda call: call.attempt) == [
        RetryCall(message_id, uuid.UUID(failed_once), 2, 2 + budget - 1, 0),
        RetryCall(message_id, uuid.UUID(failed_thrice), 4, 4 + budget - 1, 0),
    ]
    assert queue.fan_outs == []
    row = await MessagesTable(db_session).first_or_default(message_id)
    assert row is not None
    assert row.status == MessageStatus.DELIVERING
    # The retried attempts are marked due, so housekeeping would re-queue them if the enqueue were lost.
    await db_session.refresh(latest)
    assert latest.next_attempt_at is not None
    fetched = await client.get(f"{MESSAGES}/{message['id']}", headers=auth_headers)
    assert fetched.json()["status"] == "delivering"


async def test_redeliver_a_failed_message(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    queue: RecordingQueue,
    db_session: AsyncSession,
) -> None:
    message = await create_message()
    history = History(db_session, message["id"])
    for webhook_id in two_webhooks:
        await history.attempt(webhook_id, 1, 400)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)

    assert response.status_code == 202
    assert {(call.webhook_id, call.attempt) for call in queue.retries} == {
        (uuid.UUID(webhook_id), 2) for webhook_id in two_webhooks
    }
    # While that is under way, a second re-delivery is refused.
    again = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)
    assert_problem(again, 409)
    assert len(queue.retries) == 2


@pytest.mark.parametrize("status", [MessageStatus.PENDING, MessageStatus.DELIVERING])
async def test_redeliver_while_in_flight_is_409(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    queue: RecordingQueue,
    db_session: AsyncSession,
    status: MessageStatus,
) -> None:
    message = await create_message()
    history = History(db_session, message["id"])
    await history.attempt(two_webhooks[0], 1, 500)
    await history.status(status)

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)

    body = assert_problem(response, 409)
    assert "still being delivered" in body["detail"]
    assert queue.retries == []
    row = await MessagesTable(db_session).first_or_default(uuid.UUID(message["id"]))
    assert row is not None
    assert row.status == status


@pytest.mark.parametrize("with_deliveries", [True, False], ids=["all-succeeded", "no-webhooks"])
async def test_redeliver_with_nothing_failed_is_409(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    queue: RecordingQueue,
    db_session: AsyncSession,
    with_deliveries: bool,
) -> None:
    message = await create_message()
    history = History(db_session, message["id"])
    if with_deliveries:
        await history.attempt(two_webhooks[0], 1, 500)
        await history.attempt(two_webhooks[0], 2, 200)
        await history.attempt(two_webhooks[1], 1, 200)
    await history.status(MessageStatus.DELIVERED)

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)

    body = assert_problem(response, 409)
    assert "no failed deliveries" in body["detail"]
    assert queue.retries == []


async def test_redeliver_when_the_queue_is_down_is_still_accepted(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_message: MessageFactory,
    two_webhooks: tuple[str, str],
    broken_queue: BrokenQueue,
    db_session: AsyncSession,
) -> None:
    message = await create_message()
    history = History(db_session, message["id"])
    failed = await history.attempt(two_webhooks[0], 1, 500)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=auth_headers)

    assert response.status_code == 202
    assert len(broken_queue.retries) == 1
    await db_session.refresh(failed)
    assert failed.next_attempt_at is not None  # housekeeping's cue to re-queue it


async def test_redeliver_another_clients_message_is_404(
    client: httpx.AsyncClient,
    headers_for: HeadersFactory,
    create_message: MessageFactory,
    create_webhook: WebhookFactory,
    queue: RecordingQueue,
    db_session: AsyncSession,
) -> None:
    webhook = await create_webhook(sub="client-b")
    message = await create_message(sub="client-b")
    history = History(db_session, message["id"])
    await history.attempt(webhook["id"], 1, 500)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{MESSAGES}/{message['id']}/redeliver", headers=headers_for("client-a"))

    assert_problem(response, 404)
    assert queue.retries == []
    row = await MessagesTable(db_session).first_or_default(uuid.UUID(message["id"]))
    assert row is not None
    assert row.status == MessageStatus.FAILED
