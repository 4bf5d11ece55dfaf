"""Each worker process's runtime: one event loop, one engine and session factory, one webhook client.

Celery's prefork pool runs tasks as plain functions; they run their coroutines on this process's loop.
Never a loop per call: pooled asyncpg connections are bound to the loop that opened them. The runtime is
built in the pool process after fork (app/worker/main.py), so no connection is shared with the parent.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import DeliveryService
from app.api.messaging.queue import DeliveryQueue
from app.clients.webhooks.client import WebhookClient, create_webhook_client
from app.core.config import Settings
from app.db.engine import DatabaseTimeouts, create_engine, create_session_factory

T = TypeVar("T")


class WorkerRuntime:
    def __init__(self, settings: Settings, queue: DeliveryQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.policy = DeliveryPolicy.from_settings(settings)
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(settings, DatabaseTimeouts.for_worker(settings))
        self.session_factory = create_session_factory(self.engine)
        self._webhook_client: WebhookClient | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    @asynccontextmanager
    async def delivery_service(self) -> AsyncIterator[DeliveryService]:
        if self._webhook_client is None:  # made on the loop that uses it
            self._webhook_client = create_webhook_client(self.settings)
        async with self.session_factory() as session:
            yield DeliveryService(session, self._webhook_client, self.queue, self.policy)

    def close(self) -> None:
        async def close_async() -> None:
            if self._webhook_client is not None:
                await self._webhook_client.aclose()
            await self.engine.dispose()

        self.run(close_async())
        self.loop.close()


_runtime: WorkerRuntime | None = None


def start_runtime(settings: Settings, queue: DeliveryQueue) -> WorkerRuntime:
    """This process's runtime, replacing (and closing) an earlier one."""
    global _runtime
    stop_runtime()
    _runtime = WorkerRuntime(settings, queue)
    return _runtime


def stop_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


def run_delivery(use_case: Callable[[DeliveryService], Awaitable[T]]) -> T:
    """Run one delivery-service use case, in a session of its own, on this process's loop."""
    if _runtime is None:
        raise RuntimeError("The worker runtime is not started (app/worker/main.py starts it in each process).")
    runtime = _runtime

    async def run() -> T:
        async with runtime.delivery_service() as service:
            return await use_case(service)

    return runtime.run(run())
