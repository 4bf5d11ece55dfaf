"""Fixtures of the API tests: a recording delivery queue, and resources created through the API."""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.fakes import BrokenQueue, RecordingQueue
from tests.support.tokens import HeadersFactory

WebhookFactory = Callable[..., Awaitable[dict[str, Any]]]
MessageFactory = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(autouse=True)
def queue(app: FastAPI) -> Iterator[RecordingQueue]:
    """Installed for every API test in place of the lifespan's, so that no test publishes to the real broker by
    accident; the lifespan's is put back after the test (a test may replace the recording one too)."""
    lifespan_queue = app.state.delivery_queue
    recording = RecordingQueue()
    app.state.delivery_queue = recording
    yield recording
    app.state.delivery_queue = lifespan_queue


@pytest.fixture
def broken_queue(app: FastAPI, queue: RecordingQueue) -> BrokenQueue:
    """Replaces `queue` for this test: publishing fails as it does when Redis is unreachable."""
    broken = BrokenQueue()
    app.state.delivery_queue = broken
    return broken


@pytest.fixture
def create_webhook(client: httpx.AsyncClient, headers_for: HeadersFactory) -> WebhookFactory:
    """Registers a webhook through the API (201) and returns the response body."""

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
    """Posts a message through the API (202) and returns the response body."""

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
