"""Request ids: echoed when the caller's is safe, minted otherwise, on every answer and in the context."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.core.context import get_request_id
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem

MINTED = re.compile(r"[0-9a-f]{32}")

context_router = APIRouter(prefix="/test")


@context_router.get("/request-id")
async def request_id(request: Request) -> dict[str, str | None]:
    return {"context": get_request_id(), "state": request.state.request_id}


@context_router.get("/broken-stream")
async def broken_stream() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first chunk;"
        raise RuntimeError("failed mid-stream")

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.fixture(scope="module")
async def context_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(context_router)) as client:
        yield client


async def test_unknown_path_is_404_problem_with_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")

    body = assert_problem(response, 404)
    assert body["detail"] == "No resource at /no/such/thing."
    assert MINTED.fullmatch(response.headers["x-request-id"])


@pytest.mark.parametrize("incoming", ["req-123", "a1B2.c3_d4-e5", "x" * 128])
async def test_a_valid_incoming_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": incoming})

    assert response.headers["x-request-id"] == incoming
    assert assert_problem(response, 404)["request_id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["x" * 129, "has space", "<script>alert(1)</script>", "line\tbreak", "semi;colon", "ünïcode"],
    ids=["too-long", "space", "markup", "control", "semicolon", "non-ascii"],
)
async def test_an_unsafe_incoming_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/nowhere", headers={b"X-Request-ID": incoming.encode()})

    minted = response.headers["x-request-id"]
    assert MINTED.fullmatch(minted)
    assert assert_problem(response, 404)["request_id"] == minted
    assert incoming not in response.text


async def test_successful_answers_carry_a_fresh_id_each(client: httpx.AsyncClient) -> None:
    first = await client.get("/health/live")
    second = await client.get("/health/live")

    assert first.status_code == second.status_code == 200
    assert MINTED.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_the_route_sees_the_same_id(context_client: httpx.AsyncClient) -> None:
    response = await context_client.get("/test/request-id", headers={"X-Request-ID": "trace-me"})

    assert response.json() == {"context": "trace-me", "state": "trace-me"}
    assert get_request_id() is None  # reset after the request


async def test_an_error_after_the_response_started_is_not_answered_twice(context_client: httpx.AsyncClient) -> None:
    # Headers are gone already: no second (problem) response may follow; the stream just ends.
    response = await context_client.get("/test/broken-stream")

    assert response.status_code == 200
    assert response.text == "first chunk;"
    assert MINTED.fullmatch(response.headers["x-request-id"])
