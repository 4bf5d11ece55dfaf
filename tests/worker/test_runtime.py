"""The worker's per-process runtime, in this process: one loop, one engine, tasks run on it, closed at the end."""

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.pool import QueuePool

from app.core.config import Settings
from app.core.time import utcnow
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.worker import runtime
from app.worker.runtime import TaskDeadlineError, WorkerRuntime, run_delivery, start_runtime, stop_runtime
from app.worker.tasks import fan_out_message, purge_deliveries, purge_messages, requeue_stranded, retry_delivery
from tests.support.factories import create_message, create_webhook
from tests.support.fakes import RecordingQueue
from tests.support.receiver import Answer, Receiver
from tests.support.settings import test_settings


@pytest.fixture
def started(settings: Settings) -> Iterator[WorkerRuntime]:
    """The runtime a pool process starts (app/worker/main.py), stopped after the test."""
    started = start_runtime(settings, RecordingQueue())
    yield started
    stop_runtime()


# Plain (not async) tests: a task runs the runtime's own loop, as in a Celery pool process, outside any loop.
def test_tasks_run_their_use_case_on_the_runtime(started: WorkerRuntime) -> None:
    missing = str(uuid.uuid4())

    fan_out_message(missing)  # a message that is gone: nothing to do, and no error
    retry_delivery(missing, str(uuid.uuid4()), 2, 5)

    assert requeue_stranded() == 0
    assert purge_deliveries() == 0
    assert purge_messages() == 0
    assert started.queue == RecordingQueue()  # nothing was published
    assert not started.loop.is_closed()


def test_one_loop_and_one_engine_serve_every_task(started: WorkerRuntime) -> None:
    loops = [run_delivery(_running_loop) for _ in range(3)]

    assert loops == [started.loop] * 3
    pool = started.engine.pool
    assert isinstance(pool, QueuePool)
    assert pool.checkedout() == 0  # each task's session gave its connection back


async def _running_loop(_: object) -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_starting_again_closes_the_earlier_runtime(settings: Settings) -> None:
    first = start_runtime(settings, RecordingQueue())
    second = start_runtime(settings, RecordingQueue())
    try:
        assert first.loop.is_closed()
        assert runtime._runtime is second
    finally:
        stop_runtime()
    assert second.loop.is_closed()
    assert runtime._runtime is None


def test_a_task_outside_a_started_worker_says_why() -> None:
    stop_runtime()
    with pytest.raises(RuntimeError, match="runtime is not started"):
        purge_deliveries()


def test_tasks_from_many_threads_are_in_flight_at_once_on_the_one_loop(started: WorkerRuntime) -> None:
    """As in the threads pool: each task's thread hands its coroutine to the loop and waits for it."""

    async def slow(_: object) -> asyncio.AbstractEventLoop:
        await asyncio.sleep(0.5)
        return asyncio.get_running_loop()

    began = time.monotonic()
    with ThreadPoolExecutor(8) as threads:
        loops = list(threads.map(lambda _: run_delivery(slow), range(8)))

    assert loops == [started.loop] * 8
    assert time.monotonic() - began < 0.5 * 8 / 2  # not one after the other


# --- Deadlines, claims and the sweep, on rows committed for real (the runtime has sessions of its own) ------


async def _pending_message(session: AsyncSession, *urls: str) -> Message:
    for url in urls:
        await create_webhook(session, url=url)
    message = await create_message(session)
    await session.commit()
    return message


async def _other_tasks(_: object) -> int:
    return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])


async def test_a_task_past_its_deadline_is_cancelled_and_leaves_nothing_behind(
    committing_session: AsyncSession, engine: AsyncEngine, receiver: Receiver
) -> None:
    runtime = start_runtime(
        test_settings(CELERY_TASK_TIME_LIMIT_SECONDS=1, WEBHOOK_TIMEOUT_SECONDS=60), RecordingQueue()
    )
    try:
        message = await _pending_message(committing_session, receiver.url(Answer(delay=3600)))  # never answers
        began = time.monotonic()

        with pytest.raises(TaskDeadlineError):
            await asyncio.to_thread(fan_out_message, str(message.id))

        assert time.monotonic() - began < 10  # the deadline, not the 60 s attempt timeout
        assert runtime.limits.in_flight == 0  # the attempt was cancelled and gave its slot back
        assert await asyncio.to_thread(run_delivery, _other_tasks) == 0  # nothing of it left on the loop
        pool = runtime.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedout() == 0
        async with engine.connect() as connection:  # no lock left: another transaction takes it at once
            status = await connection.scalar(
                text("SELECT status FROM messages WHERE id = :id FOR UPDATE NOWAIT"), {"id": message.id}
            )
            await connection.rollback()
        assert status == MessageStatus.DELIVERING  # the claim (committed before sending); nothing recorded
        assert await DeliveriesTable(committing_session).all_by(message_id=message.id) == []
    finally:
        stop_runtime()


async def test_a_deadline_inside_a_transaction_rolls_it_back(
    committing_session: AsyncSession, engine: AsyncEngine, receiver: Receiver
) -> None:
    runtime = start_runtime(test_settings(CELERY_TASK_TIME_LIMIT_SECONDS=1), RecordingQueue())
    try:
        url = receiver.url(200)
        message = await _pending_message(committing_session, url)
        async with engine.connect() as holder:
            # Another transaction holds the message's row: the fan-out waits for it inside its own transaction.
            await holder.execute(text("SELECT 1 FROM messages WHERE id = :id FOR UPDATE"), {"id": message.id})

            with pytest.raises(TaskDeadlineError):
                await asyncio.to_thread(fan_out_message, str(message.id))

            left = await holder.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND (wait_event_type = 'Lock' OR state LIKE 'idle in transaction%')"
                )
            )
            await holder.rollback()
        assert left == 0  # its transaction is gone: nothing waits for the lock, nothing idles in a transaction
        pool = runtime.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.checkedout() == 0

        await asyncio.to_thread(fan_out_message, str(message.id))  # the next task runs as usual
        assert len(receiver.to(url)) == 1
    finally:
        stop_runtime()


async def test_a_fan_out_renews_its_claim_while_it_delivers(
    committing_session: AsyncSession, engine: AsyncEngine, receiver: Receiver
) -> None:
    lease = 1.5
    runtime = start_runtime(test_settings(MESSAGE_CLAIM_LEASE_SECONDS=lease), RecordingQueue())
    try:
        message = await _pending_message(committing_session, receiver.url(Answer(delay=2.5)))
        delivering = asyncio.create_task(asyncio.to_thread(fan_out_message, str(message.id)))
        leases: list[tuple[datetime, datetime]] = []  # (when seen, claimed until)
        while not delivering.done():
            async with engine.connect() as connection:
                until = await connection.scalar(
                    text("SELECT claimed_until FROM messages WHERE id = :id"), {"id": message.id}
                )
            if until is not None:
                leases.append((utcnow(), until))
            await asyncio.sleep(0.1)
        await delivering

        assert all(seen < until for seen, until in leases)  # never lapsed while its worker delivered
        first = leases[0][1]
        assert max(until for _, until in leases) > first + timedelta(seconds=lease / 3)  # renewed
        stored = await committing_session.get(Message, message.id, populate_existing=True)
        assert stored is not None
        assert (stored.status, stored.claimed_until) == (MessageStatus.DELIVERED, None)
        assert runtime.policy.claim_lease == timedelta(seconds=lease)
    finally:
        stop_runtime()


async def test_the_sweep_requeues_lapsed_claims_and_while_the_broker_is_idle_stranded_messages(
    committing_session: AsyncSession, receiver: Receiver
) -> None:
    queue = RecordingQueue()
    lease = 2.0
    runtime = start_runtime(test_settings(MESSAGE_CLAIM_LEASE_SECONDS=lease), queue)
    backlog = [5]

    async def broker_backlog() -> int:
        return backlog[0]

    try:
        webhook = await create_webhook(committing_session, url=receiver.url(200))
        lapsed = await create_message(
            committing_session,
            status=MessageStatus.DELIVERING,
            claim_token=uuid.uuid4(),
            claimed_until=utcnow() - timedelta(seconds=1),
            unattempted_webhook_ids=[webhook.id],
        )
        stranded = await create_message(committing_session, created_at=utcnow() - timedelta(seconds=5))
        await committing_session.commit()

        began = time.monotonic()
        runtime.start_sweeping(broker_backlog)
        await _wait_until(lambda: lapsed.id in queue.fan_outs, 5)
        await asyncio.sleep(2 * lease + 0.5)  # idle checks: tasks wait in the broker, so none is lost
        assert stranded.id not in queue.fan_outs
        backlog[0] = 0
        await _wait_until(lambda: stranded.id in queue.fan_outs, 2 * lease + 2)
        # Leased each time: re-queued once a lease (its fan-out never ran here), not at every sweep.
        assert queue.fan_outs.count(lapsed.id) <= (time.monotonic() - began) / lease + 1
    finally:
        stop_runtime()


async def _wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
