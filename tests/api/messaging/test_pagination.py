"""Walking the messages list with limit and next_cursor, alone and combined with the filters."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.time import utcnow
from app.db.message.model import MessageStatus
from tests.api.conftest import MessageFactory
from tests.support.factories import create_message
from tests.support.pages import item_ids, walk_pages

MESSAGES = "/api/v1/messages"
EVENTS = ("order.created", "order.paid", "order.shipped")
STATUSES = (MessageStatus.PENDING, MessageStatus.FAILED, MessageStatus.DELIVERED, MessageStatus.FAILED)


@pytest.fixture
async def messages(db_session: AsyncSession) -> list[dict[str, Any]]:
    """25 stored messages of client-a, oldest first, with mixed events and statuses, and client-b noise.

    Written straight to the table (fast); test_walk_visits_every_message_once_newest_first goes
    through the API instead.
    """
    start = utcnow() - timedelta(hours=1)
    created: list[dict[str, Any]] = []
    for n in range(25):
        at = start + timedelta(seconds=n)
        row = await create_message(
            db_session, event=EVENTS[n % 3], payload={"n": n}, status=STATUSES[n % 4], created_at=at
        )
        created.append({"id": str(row.id), "event": row.event, "status": str(row.status)})
        if n % 6 == 0:
            await create_message(db_session, client_id="client-b", event=EVENTS[n % 3], created_at=at)
    return created


async def test_walk_visits_every_message_once_newest_first(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory
) -> None:
    created = []
    for n in range(25):
        created.append(await create_message(payload={"n": n}))
        if n % 6 == 0:  # another client's messages in between neither show up nor shift the pages
            await create_message(sub="client-b")

    pages = await walk_pages(client, MESSAGES, auth_headers, limit=7)

    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert item_ids(pages) == [m["id"] for m in reversed(created)]
    expected = [{name: value for name, value in m.items() if name != "payload"} for m in reversed(created)]
    assert [item for page in pages for item in page] == expected


async def test_default_page_size_is_20(
    client: httpx.AsyncClient, auth_headers: dict[str, str], messages: list[dict[str, Any]]
) -> None:
    body = (await client.get(MESSAGES, headers=auth_headers)).json()
    assert len(body["items"]) == 20
    assert body["next_cursor"] is not None


@pytest.mark.parametrize("event", EVENTS)
async def test_filter_by_event_with_pagination(
    client: httpx.AsyncClient, auth_headers: dict[str, str], messages: list[dict[str, Any]], event: str
) -> None:
    pages = await walk_pages(client, MESSAGES, auth_headers, limit=3, event=event)

    expected = [m["id"] for m in reversed(messages) if m["event"] == event]
    assert item_ids(pages) == expected
    assert all(len(page) == 3 for page in pages[:-1])
    assert all(item["event"] == event for page in pages for item in page)


@pytest.mark.parametrize("status", ["pending", "failed", "delivered"])
async def test_filter_by_status_with_pagination(
    client: httpx.AsyncClient, auth_headers: dict[str, str], messages: list[dict[str, Any]], status: str
) -> None:
    pages = await walk_pages(client, MESSAGES, auth_headers, limit=4, status=status)

    expected = [m["id"] for m in reversed(messages) if m["status"] == status]
    assert expected  # the fixture has some of each
    assert item_ids(pages) == expected
    assert all(item["status"] == status for page in pages for item in page)


async def test_filter_by_event_and_status_with_pagination(
    client: httpx.AsyncClient, auth_headers: dict[str, str], messages: list[dict[str, Any]]
) -> None:
    pages = await walk_pages(client, MESSAGES, auth_headers, limit=2, event="order.created", status="failed")

    expected = [m["id"] for m in reversed(messages) if m["event"] == "order.created" and m["status"] == "failed"]
    assert len(expected) >= 3  # so the walk really spans pages
    assert item_ids(pages) == expected
    assert len(pages) == -(-len(expected) // 2)


async def test_filters_with_no_match_give_an_empty_page(
    client: httpx.AsyncClient, auth_headers: dict[str, str], messages: list[dict[str, Any]]
) -> None:
    for params in (
        {"event": "never.sent"},
        {"status": "partially_failed"},
        {"event": "order.paid", "status": "delivering"},
    ):
        response = await client.get(MESSAGES, params=params, headers=auth_headers)
        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None}


async def test_the_cursor_continues_after_new_messages_arrive(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    messages: list[dict[str, Any]],
    create_message: MessageFactory,
) -> None:
    """Keyset pagination: rows added after the first page neither shift nor repeat later pages."""
    first = (await client.get(MESSAGES, params={"limit": 10}, headers=auth_headers)).json()
    await create_message(payload={"n": "late"})
    params = {"limit": 10, "cursor": first["next_cursor"]}
    second = (await client.get(MESSAGES, params=params, headers=auth_headers)).json()

    newest_first = [m["id"] for m in reversed(messages)]
    assert [item["id"] for item in first["items"]] == newest_first[:10]
    assert [item["id"] for item in second["items"]] == newest_first[10:20]


async def test_rows_with_the_same_timestamp_are_ordered_by_id(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession
) -> None:
    """The id breaks created_at ties, so a page boundary inside a tie loses and repeats nothing."""
    at = utcnow()
    rows = [await create_message(db_session, event="a.b", created_at=at) for _ in range(9)]

    pages = await walk_pages(client, MESSAGES, auth_headers, limit=2)

    assert item_ids(pages) == sorted((str(row.id) for row in rows), key=uuid.UUID, reverse=True)
