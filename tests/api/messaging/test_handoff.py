"""The API hands each publish off: a request never waits for the broker, a hung broker costs it nothing, and
whatever could not be published stays pending for housekeeping to re-queue."""

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.handoff import HandOffQueue
from app.core.context import get_request_id, request_id_var
from app.db.message.model import Message, MessageStatus
from app.worker.publisher import RedisTaskPublisher
from tests.support.apps import build_app
from tests.support.fakes import BrokenQueue, RecordingQueue
from tests.support.silent import silent_server


class GatedQueue(RecordingQueue):
    """Publishes only once `gate` is set (a slow broker); records the request id each publish ran under."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.request_ids: list[str | None] = []

    async def fan_out(self, message_id: uuid.UUID) -> None:
        await self.gate.wait()
        self.request_ids.append(get_request_id())
        await super().fan_out(message_id)


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_caller_goes_on_while_the_publish_runs_in_its_context() -> None:
    inner = GatedQueue()
    queue = HandOffQueue(inner, deadline=5)
    message_id = uuid.uuid4()
    token = request_id_var.set("req-handoff")
    try:
        await queue.fan_out(message_id)
    finally:
        request_id_var.reset(token)

    assert inner.fan_outs == []  # handed off, not awaited
    assert queue.pending == 1
    inner.gate.set()
    await queue.aclose()
    assert inner.fan_outs == [message_id]
    assert inner.request_ids == ["req-handoff"]
    assert queue.pending == 0


async def test_a_publish_past_its_deadline_is_abandoned_and_logged(warnings: list[str]) -> None:
    inner = GatedQueue()  # the gate never opens: a broker that never answers
    queue = HandOffQueue(inner, deadline=0.05)
    message_id = uuid.uuid4()

    await queue.fan_out(message_id)
    await _until(lambda: queue.pending == 0, 5)

    assert queue.pending == 0
    assert inner.fan_outs == []
    assert len(warnings) == 1
    assert f"Could not enqueue message {message_id}" in warnings[0]
    assert "within 0.05 s" in warnings[0]


class SwitchableQueue(BrokenQueue):
    """A broker that is down while `down` is set, and up otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def fan_out(self, message_id: uuid.UUID) -> None:
        if self.down:
            await super().fan_out(message_id)
        else:
            await RecordingQueue.fan_out(self, message_id)


async def test_an_outage_is_logged_once_and_its_end_with_the_count(log_lines: list[tuple[str, str]]) -> None:
    broker = SwitchableQueue()
    queue = HandOffQueue(broker, deadline=1)

    for _ in range(3):
        await queue.fan_out(uuid.uuid4())
    await queue.retry(uuid.uuid4(), uuid.uuid4(), 2, 5, 0)
    await _until(lambda: queue.pending == 0, 5)
    broker.down = False
    await queue.fan_out(uuid.uuid4())  # the broker is back: the episode ends
    await _until(lambda: queue.pending == 0, 5)
    broker.down = True
    await queue.fan_out(uuid.uuid4())  # a new outage: said again
    await queue.aclose()

    assert (len(broker.fan_outs), len(broker.retries)) == (5, 1)
    said = [(level, message) for level, message in log_lines if level != "DEBUG"]
    assert [level for level, _ in said] == ["WARNING", "INFO", "WARNING"], said
    assert "Connection refused" in said[0][1]
    assert "4 publishes failed meanwhile" in said[1][1]
    assert sum("either" in message for level, message in log_lines if level == "DEBUG") == 3


async def test_beyond_max_pending_publishes_are_left_to_housekeeping(warnings: list[str]) -> None:
    inner = GatedQueue()
    queue = HandOffQueue(inner, deadline=5, max_pending=2)
    ids = [uuid.uuid4() for _ in range(3)]

    for message_id in ids:
        await queue.fan_out(message_id)

    assert queue.pending == 2
    assert "2 publishes are already waiting" in warnings[0]
    inner.gate.set()
    await queue.aclose()
    assert inner.fan_outs == ids[:2]


async def test_at_shutdown_unfinished_publishes_are_cancelled_after_the_deadline() -> None:
    queue = HandOffQueue(GatedQueue(), deadline=0.1)
    await queue.fan_out(uuid.uuid4())

    started = time.monotonic()
    await queue.aclose()

    assert time.monotonic() - started < 1
    assert queue.pending == 0


async def test_the_app_hands_its_publishes_off() -> None:
    app = build_app()  # its own: the `queue` fixture replaced the suite app's queue
    async with app.router.lifespan_context(app):
        assert isinstance(app.state.delivery_queue, HandOffQueue)
        assert isinstance(app.state.delivery_queue.queue, RedisTaskPublisher)


async def test_with_the_broker_hung_a_post_answers_at_once_and_the_message_stays_pending(
    app: FastAPI,
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    db_session: AsyncSession,
    queue: RecordingQueue,
) -> None:
    deadline = 2.0
    with silent_server() as port:
        # The real publisher, against a Redis that accepts connections and never answers.
        broker = Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        hung = HandOffQueue(RedisTaskPublisher(broker), deadline=deadline)
        app.state.delivery_queue = hung  # the `queue` fixture puts the lifespan's back

        started = time.monotonic()
        responses: list[Any] = [
            await client.post(
                "/api/v1/messages", json={"event": "order.created", "payload": {"n": n}}, headers=auth_headers
            )
            for n in range(3)
        ]
        answered_in = time.monotonic() - started
        assert answered_in < deadline  # not one of them waited for its publish
        await _until(lambda: hung.pending == 0, deadline + 10)  # each abandoned at its deadline
        await broker.aclose()

    assert [response.status_code for response in responses] == [202, 202, 202]
    for response in responses:
        message = await db_session.get(Message, uuid.UUID(response.json()["id"]))
        assert message is not None
        assert message.status == MessageStatus.PENDING  # housekeeping re-queues it
