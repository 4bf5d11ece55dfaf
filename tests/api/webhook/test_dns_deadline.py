"""Registration-time DNS lookups have a deadline: a host that does not resolve in time is a 422, quickly."""

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import get_target_guard
from app.clients.webhooks.target import DnsResolver, TargetGuard
from app.db.webhook.table import WebhooksTable
from tests.support.problems import assert_field_error

WEBHOOKS = "/api/v1/webhooks"
DEADLINE = 0.3


def _never_answers(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
    time.sleep(3.0)  # a DNS server that does not answer
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 0))]


@pytest.fixture
def slow_dns(app: FastAPI) -> Iterator[None]:
    """As outside local/test (public targets only), with a DNS server that never answers."""
    resolver = DnsResolver(DEADLINE, getaddrinfo=_never_answers)
    app.dependency_overrides[get_target_guard] = lambda: TargetGuard(allow_private=False, resolver=resolver)
    yield
    resolver.close()


@pytest.mark.usefixtures("slow_dns")
async def test_a_host_that_does_not_resolve_in_time_is_a_422_naming_the_url(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession
) -> None:
    started = time.perf_counter()
    response = await client.post(
        WEBHOOKS, json={"url": "https://slow.example/hook", "events": ["order.created"]}, headers=auth_headers
    )
    elapsed = time.perf_counter() - started

    errors = assert_field_error(response, ["body", "url"])
    assert f"did not resolve within {DEADLINE:g} s" in errors[0]["msg"]
    assert response.json()["detail"] == errors[0]["msg"]
    assert elapsed < DEADLINE + 1.0
    assert await WebhooksTable(db_session).all_count(client_id="client-a") == 0


@pytest.mark.usefixtures("slow_dns")
async def test_a_patch_to_a_host_that_does_not_resolve_in_time_is_a_422(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    created = await client.post(
        WEBHOOKS, json={"url": "https://93.184.215.14/hook", "events": ["order.created"]}, headers=auth_headers
    )
    assert created.status_code == 201, created.text

    response = await client.patch(
        f"{WEBHOOKS}/{created.json()['id']}", json={"url": "https://slow.example/"}, headers=auth_headers
    )

    assert_field_error(response, ["body", "url"])
