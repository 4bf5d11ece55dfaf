"""A message's delivery attempts, and re-delivery of the failed ones."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.time import utcnow
from app.db.delivery.model import Delivery
from app.db.message.model import MessageStatus
from app.db.message.table import MessagesTable
from tests.api.conftest import MessageFactory, WebhookFactory
from tests.support.factories import create_delivery
from tests.support.fakes import BrokenQueue, RecordingQueue, RetryCall
from tests.support.pages import item_ids, walk_pages
from tests.support.problems import assert_problem
from tests.support.tokens import HeadersFactory

MESSAGES = "/api/v1/messages"
FIELDS = {"id", "webhook_id", "attempt", "status", "response_status", "error", "duration_ms", "created_at"}


class History:
    """A message created through the API; writes its delivery attempts straight into the tables, as the worker would."""

    def __init__(self, session: AsyncSession, message: dict[str, Any]) -> None:
        self.message = message
        self.message_id = uuid.UUID(message["id"])
        self.path = f"{MESSAGES}/{message['id']}"
        self.session = session
        self.messages = MessagesTable(session)
        self.clock = utcnow() - timedelta(minutes=10)

    async def attempt(self, webhook_id: str, attempt: int, status: int | None, error: str | None = None) -> Delivery:
        self.clock += timedelta(seconds=1)
        succeeded = status is not None and 200 <= status < 300
        return await create_delivery(
            self.session,
            message_id=self.message_id,
            webhook_id=uuid.UUID(webhook_id),
            attempt=attempt,
            succeeded=succeeded,
            response_status=status,
            error=None if succeeded else (error or f"HTTP {status}"),
            duration_ms=12 * attempt,
            created_at=self.clock,
        )

    async def status(self, status: MessageStatus) -> None:
        await self.messages.update(self.message_id, {"status": status})

    async def stored_status(self) -> MessageStatus:
        row = await self.messages.first_or_default(self.message_id)
        assert row is not None
        return row.status


HistoryFactory = Callable[..., Awaitable[History]]


@pytest.fixture
def new_message(create_message: MessageFactory, db_session: AsyncSession) -> HistoryFactory:
    """Creates a message of client `sub` through the API; returns its History."""

    async def factory(sub: str = "client-a") -> History:
        return History(db_session, await create_message(sub=sub))

    return factory


@pytest.fixture
async def two_webhooks(create_webhook: WebhookFactory) -> tuple[str, str]:
    return (await create_webhook(url="https://a.example/"))["id"], (await create_webhook(url="https://b.example/"))[
        "id"
    ]


async def test_deliveries_list_every_attempt_newest_first(
    client: httpx.AsyncClient, auth_headers: dict[str, str], new_message: HistoryFactory, two_webhooks: tuple[str, str]
) -> None:
    a, b = two_webhooks
    history = await new_message()
    other = await new_message()
    first = await history.attempt(a, 1, 503)
    second = await history.attempt(b, 1, 200)
    third = await history.attempt(a, 2, None, error="connection refused")
    fourth = await history.attempt(a, 3, 204)
    await other.attempt(a, 1, 200)  # another message's attempt

    response = await client.get(f"{history.path}/deliveries", headers=auth_headers)

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
    client: httpx.AsyncClient, auth_headers: dict[str, str], new_message: HistoryFactory
) -> None:
    history = await new_message()
    response = await client.get(f"{history.path}/deliveries", headers=auth_headers)
    assert response.json() == {"items": [], "next_cursor": None}


async def test_deliveries_paginate(
    client: httpx.AsyncClient, auth_headers: dict[str, str], new_message: HistoryFactory, two_webhooks: tuple[str, str]
) -> None:
    history = await new_message()
    attempts = [await history.attempt(two_webhooks[n % 2], n // 2 + 1, 500) for n in range(11)]

    pages = await walk_pages(client, f"{history.path}/deliveries", auth_headers, limit=4)

    assert [len(page) for page in pages] == [4, 4, 3]
    assert item_ids(pages) == [str(d.id) for d in reversed(attempts)]


# ---- redeliver ---------------------------------------------------------------------------------


async def test_redeliver_resends_to_the_webhooks_whose_latest_attempt_failed(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    new_message: HistoryFactory,
    create_webhook: WebhookFactory,
    queue: RecordingQueue,
    db_session: AsyncSession,
    settings: Settings,
) -> None:
    failed_once, recovered, failed_thrice = [(await create_webhook())["id"] for _ in range(3)]
    history = await new_message()
    await history.attempt(failed_once, 1, 410)
    await history.attempt(recovered, 1, 500)
    await history.attempt(recovered, 2, 200)
    await history.attempt(failed_thrice, 1, 500)
    await history.attempt(failed_thrice, 2, 500)
    latest = await history.attempt(failed_thrice, 3, 500)
    await history.status(MessageStatus.PARTIALLY_FAILED)
    queue.fan_outs.clear()

    response = await client.post(f"{history.path}/redeliver", headers=auth_headers)

    assert response.status_code == 202, response.text
    assert response.json()["id"] == history.message["id"]
    assert response.json()["status"] == "delivering"
    message_id = history.message_id
    budget = settings.WEBHOOK_MAX_ATTEMPTS
    assert sorted(queue.retries, key=lambda call: call.attempt) == [
        RetryCall(message_id, uuid.UUID(failed_once), 2, 2 + budget - 1, 0),
        RetryCall(message_id, uuid.UUID(failed_thrice), 4, 4 + budget - 1, 0),
    ]
    assert queue.fan_outs == []
    assert await history.stored_status() == MessageStatus.DELIVERING
    # The retried attempts are marked due, so housekeeping would re-queue them if the enqueue were lost.
    await db_session.refresh(latest)
    assert latest.next_attempt_at is not None
    fetched = await client.get(history.path, headers=auth_headers)
    assert fetched.json()["status"] == "delivering"


async def test_redeliver_a_failed_message(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    new_message: HistoryFactory,
    two_webhooks: tuple[str, str],
    queue: RecordingQueue,
) -> None:
    history = await new_message()
    for webhook_id in two_webhooks:
        await history.attempt(webhook_id, 1, 400)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{history.path}/redeliver", headers=auth_headers)

    assert response.status_code == 202
    assert {(call.webhook_id, call.attempt) for call in queue.retries} == {
        (uuid.UUID(webhook_id), 2) for webhook_id in two_webhooks
    }
    # While that is under way, a second re-delivery is refused.
    again = await client.post(f"{history.path}/redeliver", headers=auth_headers)
    assert_problem(again, 409)
    assert len(queue.retries) == 2


@pytest.mark.parametrize(
    ("attempts", "status", "detail"),
    [
        ([(0, 1, 500)], MessageStatus.PENDING, "still being delivered"),
        ([(0, 1, 500)], MessageStatus.DELIVERING, "still being delivered"),
        ([(0, 1, 500), (0, 2, 200), (1, 1, 200)], MessageStatus.DELIVERED, "no failed deliveries"),
        ([], MessageStatus.DELIVERED, "no failed deliveries"),
    ],
    ids=["in-flight-pending", "in-flight-delivering", "all-succeeded", "nothing-attempted"],
)
async def test_redeliver_with_nothing_to_redeliver_is_409(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    new_message: HistoryFactory,
    two_webhooks: tuple[str, str],
    queue: RecordingQueue,
    attempts: list[tuple[int, int, int]],
    status: MessageStatus,
    detail: str,
) -> None:
    history = await new_message()
    for webhook, attempt, response_status in attempts:  # (which of two_webhooks, attempt, HTTP status)
        await history.attempt(two_webhooks[webhook], attempt, response_status)
    await history.status(status)

    response = await client.post(f"{history.path}/redeliver", headers=auth_headers)

    body = assert_problem(response, 409)
    assert detail in body["detail"]
    assert queue.retries == []
    assert await history.stored_status() == status


async def test_redeliver_when_the_queue_is_down_is_still_accepted(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    new_message: HistoryFactory,
    two_webhooks: tuple[str, str],
    broken_queue: BrokenQueue,
    db_session: AsyncSession,
) -> None:
    history = await new_message()
    failed = await history.attempt(two_webhooks[0], 1, 500)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{history.path}/redeliver", headers=auth_headers)

    assert response.status_code == 202
    assert len(broken_queue.retries) == 1
    await db_session.refresh(failed)
    assert failed.next_attempt_at is not None  # housekeeping's cue to re-queue it


async def test_redeliver_another_clients_message_is_404(
    client: httpx.AsyncClient,
    headers_for: HeadersFactory,
    new_message: HistoryFactory,
    create_webhook: WebhookFactory,
    queue: RecordingQueue,
) -> None:
    webhook = await create_webhook(sub="client-b")
    history = await new_message(sub="client-b")
    await history.attempt(webhook["id"], 1, 500)
    await history.status(MessageStatus.FAILED)

    response = await client.post(f"{history.path}/redeliver", headers=headers_for("client-a"))

    assert_problem(response, 404)
    assert queue.retries == []
    assert await history.stored_status() == MessageStatus.FAILED
