"""Request bodies over MAX_BODY_BYTES are refused with 413, declared or streamed."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem

LIMIT = 64
JSON = {"Content-Type": "application/json"}


class Note(BaseModel):
    text: str


body_router = APIRouter(prefix="/test")
calls: list[str] = []


@body_router.post("/notes")
async def create_note(note: Note) -> Note:
    calls.append(note.text)
    return note


@pytest.fixture(scope="module")
async def small_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(body_router, MAX_BODY_BYTES=LIMIT)) as client:
        yield client


@pytest.fixture(autouse=True)
def no_calls() -> None:
    calls.clear()


def note_of_size(size: int) -> bytes:
    body = b'{"text": "' + b"x" * (size - 12) + b'"}'
    assert len(body) == size
    return body


async def chunks(body: bytes, size: int = 10) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("size", [20, LIMIT])
async def test_a_body_within_the_limit_passes(small_client: httpx.AsyncClient, size: int) -> None:
    response = await small_client.post("/test/notes", content=note_of_size(size), headers=JSON)

    assert response.status_code == 200
    assert calls == [response.json()["text"]]


async def test_a_declared_length_over_the_limit_is_413(small_client: httpx.AsyncClient) -> None:
    response = await small_client.post("/test/notes", content=note_of_size(LIMIT + 1), headers=JSON)

    body = assert_problem(response, 413)
    assert body["detail"] == f"Request body exceeds the limit of {LIMIT} bytes."
    assert calls == []


async def test_a_chunked_body_over_the_limit_is_413(small_client: httpx.AsyncClient) -> None:
    response = await small_client.post("/test/notes", content=chunks(note_of_size(LIMIT * 3)), headers=JSON)

    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    body = assert_problem(response, 413)
    assert str(LIMIT) in body["detail"]
    assert calls == []


async def test_a_chunked_body_within_the_limit_passes(small_client: httpx.AsyncClient) -> None:
    response = await small_client.post("/test/notes", content=chunks(note_of_size(LIMIT)), headers=JSON)

    assert "content-length" not in response.request.headers
    assert response.status_code == 200
    assert len(calls) == 1


async def test_the_default_limit_allows_ordinary_bodies(client: httpx.AsyncClient) -> None:
    # The session app has the default 1 MiB limit: a 100 kB body reaches routing (and 404s there).
    response = await client.post("/nowhere", content=b"x" * 100_000)

    assert_problem(response, 404)
