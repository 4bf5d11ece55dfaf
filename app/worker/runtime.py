"""Each worker process's runtime: one event loop in a thread of its own, one engine and session factory, one
HTTP client, the process's delivery limits, and its sweep for fan-outs to take over.

The worker runs Celery's threads pool (celery_app.py): each task runs in a pool thread, which hands its
coroutine to the loop and waits for the result (`run_delivery`), so the deliveries of many tasks are in
flight on the one loop at once, capped by DeliveryLimits. Never a loop per call: pooled asyncpg
connections are bound to the loop that opened them. app/worker/main.py starts the runtime in the worker
process (`worker_init`) and stops it at shutdown.

Each task has a deadline (CELERY_TASK_TIME_LIMIT_SECONDS): past it, its coroutine is cancelled wherever
it waits, its session closed and its transaction rolled back, and the task fails with TaskDeadlineError.
"""

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from loguru import logger

from app.api.messaging.delivery_limits import DeliveryLimits
from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import DeliveryService
from app.api.messaging.queue import DeliveryQueue
from app.clients.webhooks.client import WebhookClient, create_webhook_client
from app.core.config import Settings
from app.core.outages import OutageEpisodes, root_cause
from app.db.engine import DatabaseTimeouts, create_engine, create_session_factory

T = TypeVar("T")

# How often each worker process looks for lapsed claims (dead workers' fan-outs, deferred attempts due).
SWEEP_INTERVAL_SECONDS = 1.0


class TaskDeadlineError(Exception):
    """A task ran past its deadline: its coroutine was cancelled and its transaction rolled back."""


class WorkerRuntime:
    def __init__(self, settings: Settings, queue: DeliveryQueue) -> None:
        self.settings = settings
        self.queue = queue
        self.policy = DeliveryPolicy.from_settings(settings)
        self.deadline_seconds = float(settings.CELERY_TASK_TIME_LIMIT_SECONDS)
        self.limits = DeliveryLimits(
            total=settings.WEBHOOK_MAX_IN_FLIGHT, per_endpoint=settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT
        )
        self.engine = create_engine(settings, DatabaseTimeouts.for_worker(settings))
        self.session_factory = create_session_factory(self.engine)
        self.pid = os.getpid()  # a forked child must not use it: the loop's thread is not there
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="delivery-loop", daemon=True)
        self._thread.start()
        self._webhook_client: WebhookClient | None = None
        self._sweeper: Future[None] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result; from any thread but the loop's own."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("run() waits for the loop, so it cannot be called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def run_with_deadline(self, use_case: Callable[[DeliveryService], Awaitable[T]]) -> T:
        """One use case in a session of its own, cancelled (and its transaction rolled back) at the deadline."""
        try:
            async with asyncio.timeout(self.deadline_seconds) as deadline:
                async with self.delivery_service() as service:
                    return await use_case(service)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise TaskDeadlineError(
                f"cancelled after its deadline of {self.deadline_seconds:g} s; its transaction was rolled back"
            ) from exc

    @asynccontextmanager
    async def delivery_service(self) -> AsyncIterator[DeliveryService]:
        if self._webhook_client is None:  # made on the loop that uses it
            self._webhook_client = create_webhook_client(self.settings)
        async with self.session_factory() as session:
            yield DeliveryService(session, self._webhook_client, self.queue, self.policy, self.limits)

    def start_sweeping(self, backlog: Callable[[], Awaitable[int]]) -> None:
        """Every second, re-queue the fan-outs whose claim lapsed; and, while the broker's queue is empty
        (`backlog` says how many tasks wait in it), messages pending for longer than a lease and retries
        overdue by a lease: their task was taken by a worker that died before it ran them (Celery holds a
        retry's task unacknowledged in the worker until it is due)."""
        self._sweeper = asyncio.run_coroutine_threadsafe(self._sweep(backlog), self.loop)

    async def _sweep(self, backlog: Callable[[], Awaitable[int]]) -> None:
        lease_period = self.policy.claim_lease
        lease = lease_period.total_seconds()
        idle_checked = self.loop.time()
        outage = OutageEpisodes()
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                async with self.delivery_service() as service:
                    await service.take_over_lapsed()
                    if self.loop.time() - idle_checked >= lease:
                        idle_checked = self.loop.time()
                        if await backlog() == 0:
                            await service.requeue_stranded(pending_after=lease_period, overdue_after=lease_period)
            except Exception as exc:  # the database or the broker is down: try again next time
                # Once per outage, not every second (app/core/outages.py). A sweep that went through says nothing
                # about the broker when it had nothing to publish, so only a quiet minute ends the episode.
                if outage.failed() == 0:
                    logger.warning(
                        "The takeover sweep failed; it runs again every {:g} s (the next failures are logged at"
                        " DEBUG): {!r}",
                        SWEEP_INTERVAL_SECONDS,
                        root_cause(exc),
                    )
                else:
                    logger.debug("The takeover sweep failed again: {!r}", root_cause(exc))

    def close(self) -> None:
        async def close_async() -> None:
            if self._sweeper is not None:
                self._sweeper.cancel()
            if self._webhook_client is not None:
                await self._webhook_client.aclose()
            await self.engine.dispose()

        self.run(close_async())
        if self.limits.peak_in_flight:
            logger.info("Deliveries in flight at once in this process: at most {}", self.limits.peak_in_flight)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
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
    """Run one delivery-service use case on this process's loop, within the task deadline; wait for it."""
    if _runtime is None:
        raise RuntimeError("The worker runtime is not started (app/worker/main.py starts it in each process).")
    if _runtime.pid != os.getpid():
        raise RuntimeError("The worker runtime was started in another process: run the worker's threads pool.")
    return _runtime.run(_runtime.run_with_deadline(use_case))
