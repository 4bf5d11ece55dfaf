"""At most MAX_CONCURRENT_REQUESTS requests are served at once; the rest wait in order, or get 503 in time."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter

from app.web.middleware.admission import AdmissionMiddleware
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem

held = APIRouter(prefix="/test")
entered: list[str] = []
release = asyncio.Event()
arrivals = asyncio.Condition()


@held.get("/held/{name}")
async def held_request(name: str) -> dict[str, str]:
    async with arrivals:
        entered.append(name)
        arrivals.notify_all()
    await release.wait()
    return {"name": name}


@pytest.fixture
async def one_at_a_time() -> AsyncIterator[httpx.AsyncClient]:
    global release, arrivals
    release, arrivals = asyncio.Event(), asyncio.Condition()  # bound to this test's event loop
    entered.clear()
    app = build_app(held, MAX_CONCURRENT_REQUESTS=1, REQUEST_QUEUE_TIMEOUT_SECONDS=0.3)
    async with serve(app) as client:
        yield client
        release.set()  # a request still held (a test that failed early) ends before the app shuts down


async def until_entered(count: int) -> None:
    async with asyncio.timeout(5), arrivals:
        await arrivals.wait_for(lambda: len(entered) >= count)


async def test_a_request_that_waits_too_long_gets_503_with_retry_after(one_at_a_time: httpx.AsyncClient) -> None:
    first = asyncio.create_task(one_at_a_time.get("/test/held/first"))
    await until_entered(1)

    refused = await one_at_a_time.get("/test/held/second")

    body = assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert "busy" in body["detail"]
    assert refused.headers["x-content-type-options"] == "nosniff"  # the outer middleware still ran
    assert entered == ["first"]
    release.set()
    assert (await first).json() == {"name": "first"}


async def test_waiting_requests_are_let_in_as_slots_free_up_in_arrival_order(
    one_at_a_time: httpx.AsyncClient,
) -> None:
    first = asyncio.create_task(one_at_a_time.get("/test/held/first"))
    await until_entered(1)
    waiting = []
    for name in ("second", "third"):
        waiting.append(asyncio.create_task(one_at_a_time.get(f"/test/held/{name}")))
        await asyncio.sleep(0.02)  # queued in this order

    release.set()
    responses = await asyncio.gather(first, *waiting)

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert entered == ["first", "second", "third"]


async def test_the_health_probes_never_wait(one_at_a_time: httpx.AsyncClient) -> None:
    first = asyncio.create_task(one_at_a_time.get("/test/held/first"))
    await until_entered(1)

    live = await one_at_a_time.get("/health/live")

    assert live.status_code == 200
    release.set()
    await first


async def test_a_request_that_fails_inside_gives_its_slot_back() -> None:
    calls = 0

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("the application failed")

    admission = AdmissionMiddleware(app, limit=1, timeout_seconds=0.1)  # type: ignore[arg-type]
    scope = {"type": "http", "path": "/api/v1/items", "headers": []}

    for _ in range(3):  # with the slot leaked, the second call would wait and answer 503 instead
        with pytest.raises(RuntimeError):
            await admission(scope, _receive, _discard)  # type: ignore[arg-type]
    assert calls == 3


async def test_a_waiter_cancelled_while_queued_takes_no_slot() -> None:
    gate = asyncio.Event()
    served: list[str] = []

    async def app(scope: dict[str, str], receive: object, send: object) -> None:
        served.append(scope["path"])
        await gate.wait()

    admission = AdmissionMiddleware(app, limit=1, timeout_seconds=5)  # type: ignore[arg-type]

    def call(path: str) -> "asyncio.Task[None]":
        return asyncio.create_task(admission({"type": "http", "path": path}, _receive, _discard))  # type: ignore[arg-type]

    holder = call("/a")
    await asyncio.sleep(0)
    abandoned = call("/b")  # a client that hangs up while queued
    await asyncio.sleep(0.01)
    abandoned.cancel()
    last = call("/c")
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(holder, last)

    assert served == ["/a", "/c"]
    assert abandoned.cancelled()


async def _receive() -> dict[str, object]:
    return {"type": "http.request"}


async def _discard(message: dict[str, object]) -> None:
    pass
