"""Fixtures shared by the API tests: a recording delivery queue and helpers to create resources."""

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.api.messaging.points import get_delivery_queue
from app.db.database import engine
from tests.app_helpers import assert_problem


@dataclass(frozen=True)
class RetryCall:
    message_id: uuid.UUID
    webhook_id: uuid.UUID
    attempt: int
    last_attempt: int
    delay: float


@dataclass
class RecordingQueue:
    """A DeliveryQueue that records what would have been published (to Celery, in production)."""

    fan_outs: list[uuid.UUID] = field(default_factory=list)
    retries: list[RetryCall] = field(default_factory=list)

    async def fan_out(self, message_id: uuid.UUID) -> None:
        self.fan_outs.append(message_id)

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        self.retries.append(RetryCall(message_id, webhook_id, attempt, last_attempt, delay))


@dataclass
class BrokenQueue(RecordingQueue):
    """Redis is down: every publish raises, after being counted (so a test sees it was tried)."""

    async def fan_out(self, message_id: uuid.UUID) -> None:
        await super().fan_out(message_id)
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await super().retry(message_id, webhook_id, attempt, last_attempt, delay)
        raise ConnectionError("Error 111 connecting to localhost:6379. Connection refused.")


@pytest.fixture(autouse=True)
def queue(app: FastAPI) -> Iterator[RecordingQueue]:
    """Installed for every API test, so that no test publishes to the real broker by accident."""
    recording = RecordingQueue()
    app.dependency_overrides[get_delivery_queue] = lambda: recording
    yield recording
    app.dependency_overrides.pop(get_delivery_queue, None)


@pytest.fixture
def broken_queue(app: FastAPI, queue: RecordingQueue) -> BrokenQueue:
    """Replaces `queue` for this test: publishing fails as it does when Redis is unreachable."""
    broken = BrokenQueue()
    app.dependency_overrides[get_delivery_queue] = lambda: broken
    return broken


Headers = dict[str, str]
HeadersFactory = Callable[..., Headers]
WebhookFactory = Callable[..., Awaitable[dict[str, Any]]]
MessageFactory = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def headers_for(make_token: Callable[..., str]) -> HeadersFactory:
    """Authorization headers for client `sub`, with all scopes unless `scopes` is given."""

    def factory(sub: str = "client-a", scopes: tuple[str, ...] | None = None) -> Headers:
        token = make_token(sub) if scopes is None else make_token(sub, scopes)
        return {"Authorization": f"Bearer {token}"}

    return factory


@pytest.fixture
def create_webhook(client: httpx.AsyncClient, headers_for: HeadersFactory) -> WebhookFactory:
    async def factory(
        sub: str = "client-a",
        url: str = "https://example.com/hooks",
        events: tuple[str, ...] = ("order.created",),
        **fields: Any,
    ) -> dict[str, Any]:
        body = {"url": url, "events": list(events), **fields}
        response = await client.post("/api/v1/webhooks", json=body, headers=headers_for(sub))
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return factory


@pytest.fixture
def create_message(client: httpx.AsyncClient, headers_for: HeadersFactory) -> MessageFactory:
    async def factory(
        sub: str = "client-a",
        event: str = "order.created",
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = headers_for(sub)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        body = {"event": event, "payload": {"n": 1} if payload is None else payload}
        response = await client.post("/api/v1/messages", json=body, headers=headers)
        assert response.status_code == 202, response.text
        created: dict[str, Any] = response.json()
        return created

    return factory


def assert_field_error(response: httpx.Response, loc: list[str | int]) -> list[dict[str, Any]]:
    """A 422 problem whose `errors` list names the field at `loc`; returns the errors."""
    body = assert_problem(response, 422)
    errors: list[dict[str, Any]] = body["errors"]
    assert isinstance(errors, list)
    assert errors
    assert all(set(error) == {"loc", "msg", "type"} for error in errors)
    assert loc in [error["loc"] for error in errors], errors
    return errors


Page = list[dict[str, Any]]


async def walk_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int, **filters: str
) -> list[Page]:
    """Every page of the list at `path`, following next_cursor to its end; each page answered 200."""
    pages: list[Page] = []
    params: dict[str, Any] = {"limit": limit, **filters}
    while True:
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return pages
        assert len(pages) < 50, "next_cursor never ran out"
        params = {"limit": limit, **filters, "cursor": body["next_cursor"]}


def item_ids(pages: list[Page]) -> list[str]:
    """The ids of the items of `pages`, in order."""
    return [item["id"] for page in pages for item in page]


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL sent to PostgreSQL while the test runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (connection, cursor, statement, parameters, context, executemany)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield sent
    event.remove(engine.sync_engine, "before_cursor_execute", record)
