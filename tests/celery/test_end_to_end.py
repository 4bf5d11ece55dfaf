"""A real Celery worker process consumes from the real Redis and delivers to a real local receiver."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from app.db.database import engine
from tests.receiver import running_receiver

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
DEADLINE_SECONDS = 30.0

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker() -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "WEBHOOK_RETRY_BASE_SECONDS": "0.05", "WEBHOOK_TIMEOUT_SECONDS": "5"}
    process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
        [
            CELERY,
            "-A",
            "app.celery_worker",
            "worker",
            "--concurrency=1",
            "--loglevel=WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def committing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The API with its real sessions: the worker is another process and must see committed rows."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE deliveries, messages, webhooks"))


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
    worker: subprocess.Popen[bytes], committing_client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    with running_receiver(statuses=[503]) as receiver:
        created = await committing_client.post(
            "/api/v1/webhooks", json={"url": receiver.url, "events": ["order.created"]}, headers=auth_headers
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        posted = await committing_client.post(
            "/api/v1/messages", json={"event": "order.created", "payload": {"n": 1}}, headers=auth_headers
        )
        assert posted.status_code == 202, posted.text
        message = posted.json()

        final = await _wait_for_status(
            committing_client, f"/api/v1/messages/{message['id']}", auth_headers, "delivered"
        )
        assert final["status"] == "delivered", worker.stderr.read1().decode() if worker.poll() else final  # type: ignore[union-attr]

        first, second = receiver.wait_for(2, timeout=1)[:2]
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == message["id"]
        verified = Webhook(secret).verify(second.body, second.headers)
        assert verified == {"type": "order.created", "timestamp": message["created_at"], "data": {"n": 1}}

    deliveries = await committing_client.get(f"/api/v1/messages/{message['id']}/deliveries", headers=auth_headers)
    attempts = sorted((d["attempt"], d["status"], d["response_status"]) for d in deliveries.json()["items"])
    assert attempts == [(1, "failed", 503), (2, "succeeded", 200)]
