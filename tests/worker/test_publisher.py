"""The API's publisher (app/worker/publisher.py) writes task messages a real Celery worker runs like its own."""

import asyncio
import base64
import json
import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from celery import Celery
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.context import request_id_var
from app.worker import celery_app as celery_module
from app.worker import publisher, tasks
from app.worker.publisher import RedisTaskPublisher
from tests.support.factories import create_message, create_webhook
from tests.support.receiver import Receiver
from tests.support.worker import DEADLINE_SECONDS, WorkerStarter


def test_the_publisher_sends_what_the_worker_registers_to_the_queue_it_reads(celery_app: Celery) -> None:
    assert publisher.FAN_OUT_TASK == tasks.FAN_OUT_TASK
    assert publisher.RETRY_TASK == tasks.RETRY_TASK
    assert {publisher.FAN_OUT_TASK, publisher.RETRY_TASK} <= set(celery_app.tasks)
    assert publisher.REQUEST_ID_TASK_HEADER == celery_module.REQUEST_ID_TASK_HEADER
    assert celery_app.conf.task_default_queue == publisher.DEFAULT_QUEUE


# Trace and error-reporting context (W3C trace context, Sentry's) that integrations add to a task's headers.
PROPAGATION_HEADERS = frozenset(
    {"traceparent", "tracestate", "baggage", "sentry-trace", "sentry-task-enqueued-time", "headers"}
)


def _celery_message(settings: Settings, celery_app: Celery, args: list[Any]) -> dict[str, Any]:
    """What Celery itself puts on the queue for a fan-out, read back and removed."""
    result = celery_app.send_task(tasks.FAN_OUT_TASK, args=args)
    with SyncRedis.from_url(settings.redis_url) as redis:
        for raw in redis.lrange(publisher.DEFAULT_QUEUE, 0, -1):
            message: dict[str, Any] = json.loads(raw)
            if message["headers"]["id"] == result.id:
                redis.lrem(publisher.DEFAULT_QUEUE, 1, raw)
                return message
    raise AssertionError("Celery's message is not on the queue")


def test_a_message_has_the_shape_of_celerys_own(settings: Settings, celery_app: Celery) -> None:
    """Should a Celery upgrade add a header or property, this says so before a worker has to cope without it."""
    args = [str(uuid.uuid4())]
    theirs = _celery_message(settings, celery_app, args)
    token = request_id_var.set("req-shape")
    try:
        ours: dict[str, Any] = json.loads(RedisTaskPublisher(Redis()).message(tasks.FAN_OUT_TASK, args))
    finally:
        request_id_var.reset(token)

    assert ours.keys() == theirs.keys()
    # Celery's protocol, not what instrumentation adds to it: Sentry's Celery integration, once set up in this
    # process by another test, adds its propagation headers to every send_task even with Sentry off again.
    ours_protocol = ours["headers"].keys() - {celery_module.REQUEST_ID_TASK_HEADER} - PROPAGATION_HEADERS
    assert ours_protocol == theirs["headers"].keys() - PROPAGATION_HEADERS
    assert ours["properties"].keys() == theirs["properties"].keys()
    for name in ("content-type", "content-encoding"):
        assert ours[name] == theirs[name]
    for name in ("delivery_mode", "delivery_info", "priority", "body_encoding"):
        assert ours["properties"][name] == theirs["properties"][name]
    for name in ("lang", "task", "eta", "retries", "timelimit", "argsrepr", "kwargsrepr"):
        assert ours["headers"][name] == theirs["headers"][name]
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]
    assert ours["headers"][celery_module.REQUEST_ID_TASK_HEADER] == "req-shape"
    assert json.loads(base64.b64decode(ours["body"])) == json.loads(base64.b64decode(theirs["body"]))


def test_a_delayed_task_carries_its_eta_and_an_immediate_one_none() -> None:
    maker = RedisTaskPublisher(Redis())
    before = time.time()
    delayed = json.loads(maker.message(tasks.RETRY_TASK, ["m", "w", 2, 5], 30.0))
    immediate = json.loads(maker.message(tasks.RETRY_TASK, ["m", "w", 2, 5], 0))

    eta = datetime.fromisoformat(delayed["headers"]["eta"])
    assert eta.utcoffset() is not None
    assert before + 29 < eta.timestamp() < time.time() + 31
    assert immediate["headers"]["eta"] is None


@pytest.mark.e2e
async def test_a_real_worker_runs_a_published_fan_out_and_then_a_delayed_retry_when_due(
    settings: Settings, worker_starter: WorkerStarter, committing_session: AsyncSession, receiver: Receiver
) -> None:
    url = receiver.url(200)
    webhook = await create_webhook(committing_session, url=url)
    message = await create_message(committing_session)
    await committing_session.commit()
    worker = worker_starter({})
    redis = Redis.from_url(settings.redis_url)
    queue = RedisTaskPublisher(redis)
    try:
        await queue.fan_out(message.id)
        first = receiver.wait_for(1, timeout=DEADLINE_SECONDS)
        assert len(first) == 1, worker.log()
        assert first[0].headers["webhook-id"] == str(message.id)

        published_at = time.monotonic()
        await queue.retry(message.id, webhook.id, 2, 2, 1.5)
        both = receiver.wait_for(2, timeout=DEADLINE_SECONDS)
        arrived_after = time.monotonic() - published_at
    finally:
        await redis.aclose()

    assert len(both) == 2, worker.log()
    assert both[1].headers["webhook-id"] == str(message.id)
    assert arrived_after >= 1.5  # the worker held the task until its eta


async def test_concurrent_publishes_share_round_trips_and_keep_their_order(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    queue_name = f"test-publisher-{uuid.uuid4()}"
    pushes: list[int] = []
    real_lpush = redis.lpush

    async def counted_lpush(name: str, *values: Any) -> Any:
        pushes.append(len(values))
        return await real_lpush(name, *values)

    redis.lpush = counted_lpush  # type: ignore[method-assign,assignment]
    queue = RedisTaskPublisher(redis, queue=queue_name)
    ids = [uuid.uuid4() for _ in range(40)]
    try:
        await asyncio.gather(*(queue.fan_out(message_id) for message_id in ids))
        # The worker pops from the list's right end: the first published comes first.
        popped = [json.loads(raw) for raw in reversed(await redis.lrange(queue_name, 0, -1))]
    finally:
        await redis.delete(queue_name)
        await redis.aclose()

    bodies = [json.loads(base64.b64decode(message["body"])) for message in popped]
    assert [body[0] for body in bodies] == [[str(message_id)] for message_id in ids]
    assert sum(pushes) == 40
    assert len(pushes) < 10  # one LPUSH for the first, the others together
