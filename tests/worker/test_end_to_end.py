"""A real Celery worker process consumes from the real Redis and delivers to a real local receiver."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from tests.support.receiver import Answer, Receiver
from tests.support.worker import DEADLINE_SECONDS, Worker, WorkerStarter

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker(worker_starter: WorkerStarter) -> Worker:
    return worker_starter({"WEBHOOK_RETRY_BASE_SECONDS": "0.05", "WEBHOOK_TIMEOUT_SECONDS": "5"})


@pytest.fixture
async def committing_client(app: FastAPI, truncate_after: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its real sessions: the worker is another process and must see committed rows."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _wait_for_status(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: str
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        body: dict[str, object] = (await client.get(url, headers=headers)).json()
        if body["status"] == status or loop.time() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_worker_delivers_signed_message_with_a_retry(
    worker: Worker, committing_client: httpx.AsyncClient, receiver: Receiver, auth_headers: dict[str, str]
) -> None:
    url = receiver.url(503, 200)
    created = await committing_client.post(
        "/api/v1/webhooks", json={"url": url, "events": ["order.created"]}, headers=auth_headers
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    posted = await committing_client.post(
        "/api/v1/messages", json={"event": "order.created", "payload": {"n": 1}}, headers=auth_headers
    )
    assert posted.status_code == 202, posted.text
    message = posted.json()

    final = await _wait_for_status(committing_client, f"/api/v1/messages/{message['id']}", auth_headers, "delivered")
    assert final["status"] == "delivered", worker.log() if worker.process.poll() else final

    first, second = receiver.wait_for(2, timeout=1)[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message["id"]
    verified = Webhook(secret).verify(second.body, second.headers)
    assert verified == {"type": "order.created", "timestamp": message["created_at"], "data": {"n": 1}}

    deliveries = await committing_client.get(f"/api/v1/messages/{message['id']}/deliveries", headers=auth_headers)
    attempts = sorted((d["attempt"], d["status"], d["response_status"]) for d in deliveries.json()["items"])
    assert attempts == [(1, "failed", 503), (2, "succeeded", 200)]


async def test_a_fan_out_whose_worker_was_killed_is_taken_over_by_the_next_worker(
    worker_starter: WorkerStarter,
    committing_client: httpx.AsyncClient,
    receiver: Receiver,
    auth_headers: dict[str, str],
) -> None:
    """SIGKILL mid-delivery: its task stays with the broker, unacknowledged; the claim's lease lapses instead."""
    settings = {"MESSAGE_CLAIM_LEASE_SECONDS": "2"}
    killed = worker_starter(settings)
    fast, slow = receiver.url(204), receiver.url(Answer(204, delay=3))
    for url in (fast, slow):
        created = await committing_client.post(
            "/api/v1/webhooks", json={"url": url, "events": ["order.created"]}, headers=auth_headers
        )
        assert created.status_code == 201, created.text
    posted = await committing_client.post(
        "/api/v1/messages", json={"event": "order.created", "payload": {"n": 1}}, headers=auth_headers
    )
    message = posted.json()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not receiver.to(slow):  # the attempt to the slow endpoint is in flight
        assert loop.time() < deadline, killed.log()
        await asyncio.sleep(0.05)
    killed.process.kill()
    killed.process.wait()

    worker = worker_starter(settings)
    final = await _wait_for_status(committing_client, f"/api/v1/messages/{message['id']}", auth_headers, "delivered")

    assert final["status"] == "delivered", worker.log()
    # The attempts the killed worker sent were not recorded, so they went out again: at least once.
    assert [r.headers["webhook-id"] for r in receiver.to(slow)] == [message["id"]] * 2
    assert len(receiver.to(fast)) >= 1
    deliveries = await committing_client.get(f"/api/v1/messages/{message['id']}/deliveries", headers=auth_headers)
    assert sorted(d["attempt"] for d in deliveries.json()["items"]) == [1, 1]
