"""Running async services inside Celery's (synchronous) prefork worker processes."""

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx

from app.api.messaging.delivery_service import DeliveryPolicy, DeliveryService
from app.core.config import get_settings
from app.db.database import SessionFactory, engine
from app.services.task_queue.service import CeleryDeliveryQueue
from app.services.webhook_sender.service import WebhookSender

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_http_client: httpx.AsyncClient | None = None


def init_worker_process() -> None:
    """Per worker process, after fork: one event loop for the life of the process, and no pooled
    connections inherited from the parent (they belong to its sockets and its loop)."""
    global _loop, _http_client
    engine.sync_engine.dispose(close=False)
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)
    _http_client = None


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on this process's loop. Never a loop per call: pooled asyncpg connections
    are bound to the loop that opened them."""
    if _loop is None:
        init_worker_process()
    assert _loop is not None
    return _loop.run_until_complete(coroutine)


def http_client() -> httpx.AsyncClient:
    global _http_client
    if _http_client is None:
        _http_client = httpx.AsyncClient()
    return _http_client


@asynccontextmanager
async def delivery_service() -> AsyncIterator[DeliveryService]:
    settings = get_settings()
    sender = WebhookSender(http_client(), allow_private=settings.allow_private_webhook_targets)
    async with SessionFactory() as session:
        yield DeliveryService(session, sender, CeleryDeliveryQueue(), DeliveryPolicy.from_settings(settings))
