"""The messages API: accept, read, list and filter; idempotency; ownership and scopes."""

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.message.model import MessageStatus
from app.db.message.table import MessagesTable
from tests.api.conftest import MessageFactory
from tests.support.factories import create_message as create_message_row
from tests.support.fakes import BrokenQueue, RecordingQueue
from tests.support.problems import assert_problem
from tests.support.tokens import HeadersFactory

MESSAGES = "/api/v1/messages"
FIELDS = {"id", "event", "payload", "status", "created_at", "updated_at"}
PAYLOAD: dict[str, Any] = {"order_id": 42, "items": [{"sku": "A-1", "qty": 2}], "note": "café ☕", "gift": None}


async def test_create_accepts_stores_and_enqueues(
    client: httpx.AsyncClient, auth_headers: dict[str, str], queue: RecordingQueue, db_session: AsyncSession
) -> None:
    response = await client.post(MESSAGES, json={"event": "order.created", "payload": PAYLOAD}, headers=auth_headers)

    assert response.status_code == 202, response.text
    created = response.json()
    assert set(created) == FIELDS
    assert created["event"] == "order.created"
    assert created["payload"] == PAYLOAD
    assert created["status"] == "pending"
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert created["updated_at"] == created["created_at"]
    message_id = uuid.UUID(created["id"])
    assert queue.fan_outs == [message_id]
    assert queue.retries == []

    row = await MessagesTable(db_session).first_or_default(message_id)
    assert row is not None
    assert row.client_id == "client-a"
    assert row.payload == PAYLOAD
    assert row.status == MessageStatus.PENDING
    assert row.idempotency_key is None


async def test_empty_payload_object_is_fine(create_message: MessageFactory) -> None:
    assert (await create_message(payload={}))["payload"] == {}


async def test_without_idempotency_key_every_post_is_a_new_message(
    create_message: MessageFactory, queue: RecordingQueue
) -> None:
    first, second = await create_message(), await create_message()
    assert first["id"] != second["id"]
    assert queue.fan_outs == [uuid.UUID(first["id"]), uuid.UUID(second["id"])]


async def test_enqueue_failure_still_accepts_and_leaves_the_message_pending(
    client: httpx.AsyncClient, auth_headers: dict[str, str], broken_queue: BrokenQueue, db_session: AsyncSession
) -> None:
    response = await client.post(MESSAGES, json={"event": "order.created", "payload": {"a": 1}}, headers=auth_headers)

    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "pending"
    message_id = uuid.UUID(created["id"])
    assert broken_queue.fan_outs == [message_id]  # it was tried
    row = await MessagesTable(db_session).first_or_default(message_id)
    assert row is not None  # committed before the enqueue, so housekeeping can re-queue it
    assert row.status == MessageStatus.PENDING
    fetched = await client.get(f"{MESSAGES}/{created['id']}", headers=auth_headers)
    assert fetched.json()["status"] == "pending"


# ---- Idempotency-Key ---------------------------------------------------------------------------


async def test_same_key_same_client_returns_the_first_message(
    client: httpx.AsyncClient, auth_headers: dict[str, str], queue: RecordingQueue, db_session: AsyncSession
) -> None:
    headers = {**auth_headers, "Idempotency-Key": "order-42-created"}
    body = {"event": "order.created", "payload": PAYLOAD}

    first = await client.post(MESSAGES, json=body, headers=headers)
    second = await client.post(MESSAGES, json=body, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 202
    assert second.json() == first.json()
    assert queue.fan_outs == [uuid.UUID(first.json()["id"])]  # no second fan-out
    table = MessagesTable(db_session)
    assert await table.all_count(client_id="client-a") == 1
    row = await table.first_by(client_id="client-a", idempotency_key="order-42-created")
    assert row is not None
    assert str(row.id) == first.json()["id"]


async def test_same_key_replay_ignores_json_key_order(
    client: httpx.AsyncClient, auth_headers: dict[str, str], queue: RecordingQueue
) -> None:
    headers = {**auth_headers, "Idempotency-Key": "k1"}
    first = await client.post(MESSAGES, json={"event": "a.b", "payload": {"x": 1, "y": 2}}, headers=headers)
    second = await client.post(MESSAGES, json={"payload": {"y": 2, "x": 1}, "event": "a.b"}, headers=headers)
    assert second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert len(queue.fan_outs) == 1


@pytest.mark.parametrize(
    "other",
    [
        {"event": "order.updated", "payload": {"n": 1}},
        {"event": "order.created", "payload": {"n": 2}},
        {"event": "order.created", "payload": {}},
    ],
)
async def test_same_key_different_body_is_409(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    queue: RecordingQueue,
    db_session: AsyncSession,
    other: dict[str, Any],
) -> None:
    headers = {**auth_headers, "Idempotency-Key": "reused"}
    first = await client.post(MESSAGES, json={"event": "order.created", "payload": {"n": 1}}, headers=headers)
    assert first.status_code == 202

    conflict = await client.post(MESSAGES, json=other, headers=headers)

    body = assert_problem(conflict, 409)
    assert "Idempotency-Key" in body["detail"]
    assert len(queue.fan_outs) == 1
    assert await MessagesTable(db_session).all_count(client_id="client-a") == 1


async def test_same_key_from_another_client_is_independent(
    client: httpx.AsyncClient, headers_for: HeadersFactory, queue: RecordingQueue
) -> None:
    body = {"event": "order.created", "payload": {"n": 1}}
    mine = await client.post(MESSAGES, json=body, headers={**headers_for("client-a"), "Idempotency-Key": "shared"})
    theirs = await client.post(MESSAGES, json=body, headers={**headers_for("client-b"), "Idempotency-Key": "shared"})
    # A different body under B's use of the key is B's business, not a conflict with A's.
    other = {"event": "order.updated", "payload": {}}
    third = await client.post(MESSAGES, json=other, headers={**headers_for("client-c"), "Idempotency-Key": "shared"})

    assert [r.status_code for r in (mine, theirs, third)] == [202, 202, 202]
    ids = {mine.json()["id"], theirs.json()["id"], third.json()["id"]}
    assert len(ids) == 3
    assert set(queue.fan_outs) == {uuid.UUID(i) for i in ids}
    # Each client's replay still finds its own message.
    again = await client.post(MESSAGES, json=body, headers={**headers_for("client-b"), "Idempotency-Key": "shared"})
    assert again.json()["id"] == theirs.json()["id"]


async def test_different_keys_make_different_messages(create_message: MessageFactory) -> None:
    first = await create_message(idempotency_key="one")
    second = await create_message(idempotency_key="two")
    assert first["id"] != second["id"]


async def test_replay_after_enqueue_failure_returns_the_pending_message(
    client: httpx.AsyncClient, auth_headers: dict[str, str], broken_queue: BrokenQueue
) -> None:
    headers = {**auth_headers, "Idempotency-Key": "while-redis-was-down"}
    body = {"event": "order.created", "payload": {}}
    first = await client.post(MESSAGES, json=body, headers=headers)
    second = await client.post(MESSAGES, json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["status"] == "pending"
    assert len(broken_queue.fan_outs) == 1


@pytest.mark.parametrize("key", ["x" * 255, "a", "~!#$%&'*+-.^_`|", "550e8400-e29b-41d4-a716-446655440000"])
async def test_idempotency_key_accepts_printable_ascii_up_to_255(
    client: httpx.AsyncClient, auth_headers: dict[str, str], key: str
) -> None:
    headers = {**auth_headers, "Idempotency-Key": key}
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": {}}, headers=headers)
    assert response.status_code == 202, response.text


# ---- reading -----------------------------------------------------------------------------------


async def test_get_returns_the_message(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory
) -> None:
    created = await create_message(payload=PAYLOAD)
    response = await client.get(f"{MESSAGES}/{created['id']}", headers=auth_headers)
    assert response.status_code == 200
    assert response.json() == created


async def test_get_shows_the_current_status(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory, db_session: AsyncSession
) -> None:
    created = await create_message()
    table = MessagesTable(db_session)
    await table.update(uuid.UUID(created["id"]), {"status": MessageStatus.PARTIALLY_FAILED})

    response = await client.get(f"{MESSAGES}/{created['id']}", headers=auth_headers)

    assert response.json()["status"] == "partially_failed"


async def test_unknown_message_is_404(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    message_id = uuid.uuid4()
    body = assert_problem(await client.get(f"{MESSAGES}/{message_id}", headers=auth_headers), 404)
    assert str(message_id) in body["detail"]
    assert_problem(await client.get(f"{MESSAGES}/{message_id}/deliveries", headers=auth_headers), 404)
    assert_problem(await client.post(f"{MESSAGES}/{message_id}/redeliver", headers=auth_headers), 404)


async def test_another_clients_message_is_404(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_message: MessageFactory, queue: RecordingQueue
) -> None:
    theirs = await create_message(sub="client-b")
    mine = headers_for("client-a")
    path = f"{MESSAGES}/{theirs['id']}"

    assert_problem(await client.get(path, headers=mine), 404)
    assert_problem(await client.get(f"{path}/deliveries", headers=mine), 404)
    assert_problem(await client.post(f"{path}/redeliver", headers=mine), 404)
    assert (await client.get(MESSAGES, headers=mine)).json() == {"items": [], "next_cursor": None}
    assert queue.retries == []
    assert (await client.get(path, headers=headers_for("client-b"))).status_code == 200


async def test_list_is_newest_first_and_only_own(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory
) -> None:
    first = await create_message(event="a.one")
    await create_message(sub="client-b", event="a.one")
    second = await create_message(event="a.two")

    response = await client.get(MESSAGES, headers=auth_headers)

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    # A list item is the message without its payload (GET /messages/{id} has it).
    assert body["items"] == [without_payload(second), without_payload(first)]


def without_payload(message: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in message.items() if name != "payload"}


async def test_a_page_of_large_messages_stays_small(
    client: httpx.AsyncClient, headers_for: HeadersFactory, db_session: AsyncSession, statements: list[str]
) -> None:
    # Ten messages of almost 1 MiB each, written straight to the table (posting them would take long).
    big = {"blob": "x" * 1_000_000}
    for n in range(10):
        await create_message_row(db_session, client_id="client-big", event="order." + "x" * 90, payload={**big, "n": n})

    statements.clear()
    response = await client.get(MESSAGES, params={"limit": 100}, headers=headers_for("client-big"))

    assert response.status_code == 200
    (query,) = [sql for sql in statements if "FROM messages" in sql]
    assert "payload" not in query  # not even read into memory
    items = response.json()["items"]
    assert len(items) == 10
    assert all("payload" not in item for item in items)
    assert len(response.content) < 10 * 300  # about 250 bytes an item, whatever the payloads
    one = await client.get(f"{MESSAGES}/{items[0]['id']}", headers=headers_for("client-big"))
    assert one.json()["payload"]["blob"] == big["blob"]


# ---- authentication and scopes -----------------------------------------------------------------

ENDPOINTS: list[tuple[str, str, str]] = [
    ("POST", "", "messages:write"),
    ("GET", "", "messages:read"),
    ("GET", "/{id}", "messages:read"),
    ("GET", "/{id}/deliveries", "messages:read"),
    ("POST", "/{id}/redeliver", "messages:write"),
]


def _body(method: str, suffix: str) -> dict[str, Any] | None:
    return {"event": "a.b", "payload": {}} if (method, suffix) == ("POST", "") else None


@pytest.mark.parametrize(("method", "suffix", "scope"), ENDPOINTS)
async def test_without_token_is_401(
    client: httpx.AsyncClient, queue: RecordingQueue, method: str, suffix: str, scope: str
) -> None:
    response = await client.request(method, MESSAGES + suffix.format(id=uuid.uuid4()), json=_body(method, suffix))
    assert_problem(response, 401)
    assert queue.fan_outs == []


async def test_bad_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(MESSAGES, headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(response, 401)
    assert "invalid_token" in response.headers["www-authenticate"]


@pytest.mark.parametrize(("method", "suffix", "scope"), ENDPOINTS)
async def test_without_the_scope_is_403(
    client: httpx.AsyncClient,
    headers_for: HeadersFactory,
    create_message: MessageFactory,
    queue: RecordingQueue,
    db_session: AsyncSession,
    method: str,
    suffix: str,
    scope: str,
) -> None:
    created = await create_message()
    queue.fan_outs.clear()
    all_but = tuple(s for s in ("webhooks:read", "webhooks:write", "messages:read", "messages:write") if s != scope)

    response = await client.request(
        method,
        MESSAGES + suffix.format(id=created["id"]),
        json=_body(method, suffix),
        headers=headers_for(scopes=all_but),
    )

    body = assert_problem(response, 403)
    assert scope in body["detail"]
    assert queue.fan_outs == []
    assert queue.retries == []
    assert await MessagesTable(db_session).all_count(client_id="client-a") == 1


async def test_webhook_scopes_do_not_grant_messages(client: httpx.AsyncClient, headers_for: HeadersFactory) -> None:
    headers = headers_for(scopes=("webhooks:read", "webhooks:write"))
    assert_problem(await client.get(MESSAGES, headers=headers), 403)
    assert_problem(await client.post(MESSAGES, json={"event": "a.b", "payload": {}}, headers=headers), 403)
