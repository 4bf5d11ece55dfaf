"""The webhooks API: create, read, list, update, soft-delete; ownership and scopes."""

import base64
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import get_settings
from app.db.webhook.table import WebhooksTable
from tests.api.conftest import WebhookFactory
from tests.support.problems import assert_problem
from tests.support.sealing import KEYRING, secret_of
from tests.support.settings import test_settings
from tests.support.tokens import HeadersFactory

WEBHOOKS = "/api/v1/webhooks"
READ_FIELDS = {
    "id",
    "url",
    "events",
    "description",
    "active",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "created_at",
    "updated_at",
}


async def test_create_returns_the_webhook_and_its_secret_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession
) -> None:
    body = {"url": "https://example.com/hooks?x=1", "events": ["order.created", "order.paid"], "description": "shop"}
    response = await client.post(WEBHOOKS, json=body, headers=auth_headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == READ_FIELDS | {"secret"}
    assert created["url"] == "https://example.com/hooks?x=1"
    assert created["events"] == ["order.created", "order.paid"]
    assert created["description"] == "shop"
    assert created["active"] is True
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    # Two default factories, microseconds apart: equal to the millisecond, never out of order.
    created_at, updated_at = (datetime.fromisoformat(created[key]) for key in ("created_at", "updated_at"))
    assert updated_at == created_at
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24

    row = await WebhooksTable(db_session).first_or_default(uuid.UUID(created["id"]))
    assert row is not None
    assert row.client_id == "client-a"
    # Stored sealed under the current key, bound to this row: the plain secret is nowhere in the row.
    assert row.secret_key_id == KEYRING.current_key_id
    assert secret.encode() not in row.secret_ciphertext
    assert base64.b64decode(secret.removeprefix("whsec_")) not in row.secret_ciphertext
    assert secret_of(row) == secret


async def test_every_webhook_gets_its_own_secret(create_webhook: WebhookFactory) -> None:
    first, second = await create_webhook(), await create_webhook()
    assert first["secret"] != second["secret"]
    assert first["id"] != second["id"]


async def test_create_drops_duplicate_events_keeping_order(create_webhook: WebhookFactory) -> None:
    created = await create_webhook(events=("b.two", "a.one", "b.two"))
    assert created["events"] == ["b.two", "a.one"]


async def test_description_is_optional(create_webhook: WebhookFactory) -> None:
    assert (await create_webhook())["description"] is None


async def test_get_returns_the_webhook_without_secret(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = await create_webhook(description="d")
    response = await client.get(f"{WEBHOOKS}/{created['id']}", headers=auth_headers)

    assert response.status_code == 200
    fetched = response.json()
    assert set(fetched) == READ_FIELDS
    assert fetched == {key: created[key] for key in READ_FIELDS}


async def test_list_returns_own_webhooks_newest_first_without_secrets(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    older, newer = await create_webhook(), await create_webhook()
    await create_webhook(sub="client-b")

    response = await client.get(WEBHOOKS, headers=auth_headers)

    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    assert [item["id"] for item in page["items"]] == [newer["id"], older["id"]]
    assert all(set(item) == READ_FIELDS for item in page["items"])


async def test_list_is_empty_for_a_new_client(client: httpx.AsyncClient, headers_for: HeadersFactory) -> None:
    response = await client.get(WEBHOOKS, headers=headers_for("nobody-yet"))
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory, db_session: AsyncSession
) -> None:
    created = await create_webhook(description="keep me")
    response = await client.patch(
        f"{WEBHOOKS}/{created['id']}",
        json={"url": "http://example.org/new", "events": ["order.paid"], "active": False},
        headers=auth_headers,
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert set(updated) == READ_FIELDS
    assert updated["url"] == "http://example.org/new"
    assert updated["events"] == ["order.paid"]
    assert updated["active"] is False
    assert updated["description"] == "keep me"
    assert updated["created_at"] == created["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(created["updated_at"])

    fetched = (await client.get(f"{WEBHOOKS}/{created['id']}", headers=auth_headers)).json()
    assert fetched == updated
    row = await WebhooksTable(db_session).first_or_default(uuid.UUID(created["id"]))
    assert row is not None
    assert secret_of(row) == created["secret"]  # an update never rotates the secret


async def test_patch_description_null_clears_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = await create_webhook(description="old")
    response = await client.patch(f"{WEBHOOKS}/{created['id']}", json={"description": None}, headers=auth_headers)
    assert response.status_code == 200
    assert response.json()["description"] is None
    assert response.json()["url"] == created["url"]


async def test_patch_can_reactivate(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = await create_webhook()
    path = f"{WEBHOOKS}/{created['id']}"
    assert (await client.patch(path, json={"active": False}, headers=auth_headers)).json()["active"] is False
    assert (await client.patch(path, json={"active": True}, headers=auth_headers)).json()["active"] is True


async def test_delete_is_a_soft_delete_and_then_404_everywhere(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory, db_session: AsyncSession
) -> None:
    kept, deleted = await create_webhook(), await create_webhook()
    path = f"{WEBHOOKS}/{deleted['id']}"

    response = await client.delete(path, headers=auth_headers)
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(await client.get(path, headers=auth_headers), 404)
    assert_problem(await client.patch(path, json={"active": True}, headers=auth_headers), 404)
    assert_problem(await client.delete(path, headers=auth_headers), 404)
    listed = (await client.get(WEBHOOKS, headers=auth_headers)).json()
    assert [item["id"] for item in listed["items"]] == [kept["id"]]

    table = WebhooksTable(db_session)
    assert await table.first_or_default(uuid.UUID(deleted["id"])) is None
    row = await table.first_or_default(uuid.UUID(deleted["id"]), include_deleted=True)
    assert row is not None  # still there, for the delivery history
    assert row.deleted_at is not None


async def test_unknown_webhook_is_404(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    path = f"{WEBHOOKS}/{uuid.uuid4()}"
    body = assert_problem(await client.get(path, headers=auth_headers), 404)
    assert "not found" in body["detail"]
    assert_problem(await client.patch(path, json={"active": False}, headers=auth_headers), 404)
    assert_problem(await client.delete(path, headers=auth_headers), 404)


async def test_another_clients_webhook_is_404_and_untouched(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory
) -> None:
    theirs = await create_webhook(sub="client-b")
    path = f"{WEBHOOKS}/{theirs['id']}"
    mine = headers_for("client-a")

    assert_problem(await client.get(path, headers=mine), 404)
    assert_problem(await client.patch(path, json={"url": "https://evil.example/"}, headers=mine), 404)
    assert_problem(await client.delete(path, headers=mine), 404)
    assert (await client.get(WEBHOOKS, headers=mine)).json()["items"] == []

    owner_view = await client.get(path, headers=headers_for("client-b"))
    assert owner_view.status_code == 200
    assert owner_view.json()["url"] == theirs["url"]


ENDPOINTS: list[tuple[str, str, str]] = [
    ("POST", "", "webhooks:write"),
    ("GET", "", "webhooks:read"),
    ("GET", "/{id}", "webhooks:read"),
    ("PATCH", "/{id}", "webhooks:write"),
    ("DELETE", "/{id}", "webhooks:write"),
]
BODIES: dict[str, Any] = {"POST": {"url": "https://example.com/", "events": ["a.b"]}, "PATCH": {"active": False}}


@pytest.mark.parametrize(("method", "suffix", "scope"), ENDPOINTS)
async def test_without_token_is_401(client: httpx.AsyncClient, method: str, suffix: str, scope: str) -> None:
    path = WEBHOOKS + suffix.format(id=uuid.uuid4())
    response = await client.request(method, path, json=BODIES.get(method))
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "suffix", "scope"), ENDPOINTS)
async def test_without_the_scope_is_403(
    client: httpx.AsyncClient,
    headers_for: HeadersFactory,
    create_webhook: WebhookFactory,
    method: str,
    suffix: str,
    scope: str,
) -> None:
    created = await create_webhook()
    all_but = tuple(s for s in ("webhooks:read", "webhooks:write", "messages:read", "messages:write") if s != scope)
    path = WEBHOOKS + suffix.format(id=created["id"])

    response = await client.request(method, path, json=BODIES.get(method), headers=headers_for(scopes=all_but))

    body = assert_problem(response, 403)
    assert scope in body["detail"]
    assert "insufficient_scope" in response.headers["www-authenticate"]
    # The refused write changed nothing.
    after = await client.get(f"{WEBHOOKS}/{created['id']}", headers=headers_for())
    assert after.status_code == 200
    assert after.json()["active"] is True


async def test_read_scope_alone_reads_but_cannot_write(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory
) -> None:
    created = await create_webhook()
    reader = headers_for(scopes=("webhooks:read",))
    assert (await client.get(WEBHOOKS, headers=reader)).status_code == 200
    assert (await client.get(f"{WEBHOOKS}/{created['id']}", headers=reader)).status_code == 200
    assert_problem(await client.post(WEBHOOKS, json=BODIES["POST"], headers=reader), 403)


@pytest.fixture
def two_per_client(app: FastAPI) -> Iterator[None]:
    """WEBHOOK_MAX_PER_CLIENT=2 for this test's requests."""
    app.dependency_overrides[get_settings] = lambda: test_settings(WEBHOOK_MAX_PER_CLIENT=2)
    yield
    app.dependency_overrides.pop(get_settings, None)


async def test_a_client_cannot_register_more_webhooks_than_the_limit(
    two_per_client: None, client: httpx.AsyncClient, create_webhook: WebhookFactory, headers_for: HeadersFactory
) -> None:
    first, _ = await create_webhook(), await create_webhook()
    body = {"url": "https://example.com/third", "events": ["order.created"]}

    refused = await client.post(WEBHOOKS, json=body, headers=headers_for())

    problem = assert_problem(refused, 409)
    assert "at most 2 webhooks" in problem["detail"]
    listed = await client.get(WEBHOOKS, headers=headers_for())
    assert len(listed.json()["items"]) == 2  # nothing was stored
    await create_webhook(sub="client-b")  # the limit is per client
    # A deleted webhook no longer counts.
    assert (await client.delete(f"{WEBHOOKS}/{first['id']}", headers=headers_for())).status_code == 204
    assert (await client.post(WEBHOOKS, json=body, headers=headers_for())).status_code == 201
