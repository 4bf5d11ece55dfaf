"""The request's session: reads (GET, HEAD) without a transaction, everything else within one."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import text

from app.api.deps import SessionDep
from tests.support.apps import build_app, serve

probe_router = APIRouter(prefix="/test")


@probe_router.api_route("/session", methods=["GET", "POST", "PATCH", "DELETE"])
async def session_state(session: SessionDep) -> dict[str, bool]:
    await session.execute(text("SELECT 1"))
    raw = await (await session.connection()).get_raw_connection()
    return {"in_transaction": bool(raw.driver_connection.is_in_transaction())}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
async def probe_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(probe_router)) as client:
        yield client


async def test_a_get_reads_without_begin_and_rollback(probe_client: httpx.AsyncClient) -> None:
    assert (await probe_client.get("/test/session")).json() == {"in_transaction": False}


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_other_methods_work_in_a_transaction(probe_client: httpx.AsyncClient, method: str) -> None:
    assert (await probe_client.request(method, "/test/session")).json() == {"in_transaction": True}
