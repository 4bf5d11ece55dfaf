"""The broker connection has deadlines: a Redis that accepts connections and never answers fails a publish
(the API's side) and a consumer's connection (the worker's side) within seconds instead of hanging them."""

import asyncio
import time
import uuid

import pytest
from sqlalchemy import text

from app.worker.celery_app import create_celery_app
from app.worker.queue import CeleryDeliveryQueue
from tests.support.apps import build_app, serve
from tests.support.settings import test_settings
from tests.support.tokens import HeadersFactory

TIMEOUT = 0.3
# Without the socket timeouts these would never return: the tests give up after this instead of hanging.
GUARD_SECONDS = 30


def hung_broker_settings(port: int) -> dict[str, object]:
    return {"REDIS_PORT": port, "BROKER_CONNECT_TIMEOUT_SECONDS": TIMEOUT, "BROKER_SOCKET_TIMEOUT_SECONDS": TIMEOUT}


def test_the_socket_deadlines_reach_kombu() -> None:
    settings = test_settings(BROKER_CONNECT_TIMEOUT_SECONDS=1.5, BROKER_SOCKET_TIMEOUT_SECONDS=4)
    options = create_celery_app(settings).conf.broker_transport_options

    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.5, 4)


async def test_publishing_to_a_hung_broker_fails_within_its_deadlines(silent_port: int) -> None:
    queue = CeleryDeliveryQueue(create_celery_app(test_settings(**hung_broker_settings(silent_port))))

    started = time.perf_counter()
    with pytest.raises(Exception, match="Timeout"):
        await asyncio.wait_for(queue.fan_out(uuid.uuid4()), GUARD_SECONDS)
    elapsed = time.perf_counter() - started

    # Three tries (task_publish_retry_policy), each ended by the socket timeout.
    assert elapsed < 10 * TIMEOUT + 1, f"publishing took {elapsed:.1f}s"


async def test_a_worker_connecting_to_a_hung_broker_fails_within_its_deadlines(silent_port: int) -> None:
    celery_app = create_celery_app(test_settings(**hung_broker_settings(silent_port)))

    def connect() -> None:
        with celery_app.connection_for_read() as connection:  # what the worker's consumer opens
            connection.ensure_connection(max_retries=1)

    started = time.perf_counter()
    with pytest.raises(Exception, match="Timeout"):
        await asyncio.wait_for(asyncio.to_thread(connect), GUARD_SECONDS)
    elapsed = time.perf_counter() - started

    assert elapsed < 10 * TIMEOUT + 3, f"connecting took {elapsed:.1f}s"


async def test_a_message_is_accepted_quickly_while_the_broker_hangs(
    silent_port: int, headers_for: HeadersFactory
) -> None:
    # The real Celery queue, on a broker that never answers (the rate limiter's Redis too: it fails open).
    app = build_app(**hung_broker_settings(silent_port), HEALTH_CHECK_TIMEOUT_SECONDS=TIMEOUT)
    headers = headers_for(f"hung-broker-{uuid.uuid4().hex}")
    async with serve(app) as client:
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/messages", json={"event": "order.created", "payload": {}}, headers=headers, timeout=GUARD_SECONDS
        )
        elapsed = time.perf_counter() - started
        # It stays pending; housekeeping enqueues it once the broker answers again.
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "pending"
        async with app.state.session_factory() as session:
            await session.execute(text("DELETE FROM messages WHERE id = :id"), {"id": response.json()["id"]})
            await session.commit()

    assert elapsed < 10 * TIMEOUT + 2, f"the request took {elapsed:.1f}s"
