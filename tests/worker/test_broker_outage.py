"""A real worker and the API through a TCP proxy in front of the suite's Redis: the broker freezes (connections
accepted and held, nothing answered) or strands the connections open (half-open: a failover, a NAT that forgot
them). The outage begins while a task is in flight, so its acknowledgement is lost with the connection
(app/worker/acks.py). A message posted meanwhile is accepted at once and stays pending; once Redis answers
again the worker consumes again, and every message is delivered (the pending one re-queued by the worker's
sweep)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from app.core.config import Settings
from tests.support.apps import build_app, serve
from tests.support.receiver import Answer, Receiver
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.support.tokens import HeadersFactory
from tests.support.worker import Worker, WorkerStarter

pytestmark = pytest.mark.e2e

HEALTH_CHECK_INTERVAL = 2  # the consumer drops a connection whose reply is 1 + 2 s overdue
# From Redis answering again to the worker consuming: a consumer's reconnect (it had dropped its connection
# during the freeze), or its health check finding the stranded connection (1 + 2 x 2 s), with room for a
# loaded machine. kombu's default interval (25 s) would take up to 51 s.
RECOVERY_SECONDS = 15.0
# Through the API and the worker alike: kombu's sockets, and the rate limiter's and probes' Redis.
DEADLINES = {"BROKER_CONNECT_TIMEOUT_SECONDS": 0.5, "BROKER_SOCKET_TIMEOUT_SECONDS": 0.5}


@dataclass
class Stack:
    proxy: TcpProxy
    worker: Worker
    client: httpx.AsyncClient
    headers: dict[str, str]
    webhook_url: str

    async def post(self) -> tuple[str, float]:
        """Post a message; its id and how long the API took to accept it."""
        started = time.monotonic()
        response = await self.client.post(
            "/api/v1/messages", json={"event": "order.created", "payload": {}}, headers=self.headers, timeout=30
        )
        assert response.status_code == 202, response.text
        return response.json()["id"], time.monotonic() - started


@pytest.fixture
async def stack(
    settings: Settings,
    worker_starter: WorkerStarter,
    receiver: Receiver,
    headers_for: HeadersFactory,
    truncate_after: None,
) -> AsyncIterator[Stack]:
    async with tcp_proxy(settings.REDIS_HOST, settings.REDIS_PORT) as proxy:
        redis = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": proxy.port, **DEADLINES}
        worker = worker_starter(
            {
                **{name: str(value) for name, value in redis.items()},
                "BROKER_HEALTH_CHECK_INTERVAL_SECONDS": str(HEALTH_CHECK_INTERVAL),
                # The worker's sweep re-queues a message pending this long while the broker's queue is empty.
                "MESSAGE_CLAIM_LEASE_SECONDS": "2",
            }
        )
        app = build_app(**redis, HEALTH_CHECK_TIMEOUT_SECONDS=0.5)
        async with serve(app) as client:
            headers = headers_for(f"broker-outage-{uuid.uuid4().hex}")
            # The first message's attempt takes a second: the outage begins while its task is in flight, so
            # that the task finishes during the outage, and its acknowledgement is lost with the connection.
            url = receiver.url(Answer(204, delay=1), 204)
            created = await client.post(
                "/api/v1/webhooks", json={"url": url, "events": ["order.created"]}, headers=headers
            )
            assert created.status_code == 201, created.text
            yield Stack(proxy, worker, client, headers, url)


async def _in_flight(stack: Stack, receiver: Receiver, message_id: str) -> None:
    """Until the receiver is answering the message's first attempt (slowly)."""
    started = time.monotonic()
    while message_id not in {request.headers["webhook-id"] for request in receiver.to(stack.webhook_url)}:
        assert time.monotonic() - started < 30, stack.worker.log()[-4000:]
        await asyncio.sleep(0.02)


async def _delivered(stack: Stack, receiver: Receiver, message_ids: set[str], seconds: float) -> None:
    """Until the receiver has had every message; fails with the worker's log after `seconds`."""
    started = time.monotonic()
    while not message_ids <= {request.headers["webhook-id"] for request in receiver.to(stack.webhook_url)}:
        assert time.monotonic() - started < seconds, stack.worker.log()[-4000:]
        await asyncio.sleep(0.1)


async def test_the_worker_consumes_again_after_redis_froze_and_nothing_posted_meanwhile_is_lost(
    stack: Stack, receiver: Receiver
) -> None:
    before, _ = await stack.post()
    await _in_flight(stack, receiver, before)  # the worker is up and consuming

    stack.proxy.freeze()
    during, accepted_in = await stack.post()
    await asyncio.sleep(8)  # longer than the consumer's health check: it drops its connection meanwhile
    stack.proxy.restore()
    after, _ = await stack.post()
    await _delivered(stack, receiver, {during, after}, RECOVERY_SECONDS)

    # The rate limiter's one try and no wait for the publish (handed off): well under a second's socket waits.
    assert accepted_in < 2, f"the API took {accepted_in:.1f} s to accept a message while Redis was frozen"


async def test_a_worker_whose_broker_connection_went_half_open_reconnects_and_consumes(
    stack: Stack, receiver: Receiver
) -> None:
    before, _ = await stack.post()
    await _in_flight(stack, receiver, before)

    # Redis is fine, but nothing ever comes back on the connections open now (the worker's consumer's
    # among them): only its health check can tell.
    stack.proxy.strand()
    after, _ = await stack.post()
    await _delivered(stack, receiver, {after}, RECOVERY_SECONDS)
