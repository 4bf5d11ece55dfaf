"""Many tasks at once in one worker process: a slow endpoint holds its own slots, and holds up nobody else."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.db.delivery.model import DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable
from app.worker.runtime import run_delivery, start_runtime, stop_runtime
from app.worker.tasks import fan_out_message
from tests.support.factories import create_message, create_webhook
from tests.support.fakes import RecordingQueue
from tests.support.receiver import Answer, Receiver
from tests.support.settings import test_settings

SLOW_SECONDS = 4.0
PER_ENDPOINT = 3


async def _messages(session: AsyncSession, count: int) -> list[Message]:
    messages = [await create_message(session) for _ in range(count)]
    await session.commit()
    return messages


async def _statuses(session: AsyncSession, messages: list[Message]) -> list[MessageStatus]:
    statement = select(col(Message.status)).where(col(Message.id).in_([m.id for m in messages]))
    statuses = list((await session.scalars(statement)).all())
    await session.commit()
    return statuses


async def test_a_slow_endpoint_uses_its_own_slots_and_the_other_deliveries_do_not_wait_for_it(
    committing_session: AsyncSession, receiver: Receiver
) -> None:
    queue = RecordingQueue()
    limits = start_runtime(test_settings(WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT=PER_ENDPOINT), queue).limits
    threads = ThreadPoolExecutor(16)  # Celery's threads pool, in small
    try:
        fast_urls = [receiver.url(204) for _ in range(3)]
        slow_url = receiver.url(Answer(204, delay=SLOW_SECONDS))
        for url in [*fast_urls, slow_url]:
            await create_webhook(committing_session, url=url)
        loop = asyncio.get_running_loop()
        early = await _messages(committing_session, 2)
        early_done = [loop.run_in_executor(threads, fan_out_message, str(m.id)) for m in early]
        await asyncio.sleep(1.0)  # their slow attempts are in flight for longer than DeliveryLimits.slow_after
        later = await _messages(committing_session, 8)

        later_done = [loop.run_in_executor(threads, fan_out_message, str(m.id)) for m in later]
        await asyncio.wait(later_done, timeout=SLOW_SECONDS * 3)

        # Every later fan-out finished while the early ones still waited for the slow endpoint.
        assert all(f.done() for f in later_done)
        assert not any(f.done() for f in early_done)
        for done in later_done:
            done.result()  # none failed
        deliveries = DeliveriesTable(committing_session)
        for message in later:
            attempts = await deliveries.all_by(message_id=message.id)
            assert len(attempts) == len(fast_urls)
            assert all(a.status == DeliveryStatus.SUCCEEDED for a in attempts)
            stored = await MessagesTable(committing_session).first_or_default(message.id)
            assert stored is not None
            await committing_session.refresh(stored)
            assert stored.status == MessageStatus.DELIVERING
            assert stored.unattempted_webhook_ids is not None
            assert len(stored.unattempted_webhook_ids) == 1  # the slow one, deferred
            assert stored.claim_token is None
            assert stored.claimed_until is not None
        await asyncio.gather(*early_done)

        # The sweep hands the deferred attempts out when due; they wait their turn for the slow endpoint's slots.
        deadline = time.monotonic() + 60
        while True:
            await asyncio.to_thread(run_delivery, lambda service: service.take_over_lapsed())
            handed_out, queue.fan_outs[:] = list(queue.fan_outs), []
            await asyncio.gather(*(loop.run_in_executor(threads, fan_out_message, str(m)) for m in handed_out))
            statuses = await _statuses(committing_session, early + later)
            if set(statuses) == {MessageStatus.DELIVERED}:
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.2)

        assert len(receiver.to(slow_url)) == len(early) + len(later)
        assert receiver.peak_in_flight(slow_url) <= PER_ENDPOINT
        assert limits.peak_in_flight > PER_ENDPOINT  # other tasks' deliveries were in flight beside them
    finally:
        threads.shutdown()
        stop_runtime()
