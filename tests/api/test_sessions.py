"""The request's session: reads (GET, HEAD) without a transaction, everything else within one."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import text
from starlette.types import Receive, Scope, Send

from app.api.deps import SessionDep
from tests.support.apps import build_app, serve

probe_router = APIRouter(prefix="/test")


@probe_router.api_route("/session", methods=["GET", "POST", "PATCH", "DELETE"])
async def session_state(session: SessionDep) -> dict[str, bool]:
    await session.execute(text("SELECT 1"))
    raw = await (await session.connection()).get_raw_connection()
    return {"in_transaction": bool(raw.driver_connection.is_in_transaction())}  # type: ignore[union-attr]


class PoolStateResponse(Response):
    """Reports, as it is sent, how many of the app's pooled connections are checked out."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__()
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.body = str(self.app.state.engine.sync_engine.pool.checkedout()).encode()
        self.init_headers()
        await super().__call__(scope, receive, send)


@probe_router.get("/pool")
async def pool_state(request: Request, session: SessionDep) -> Response:
    await session.execute(text("SELECT 1"))
    return PoolStateResponse(request.app)


@pytest.fixture(scope="module")
async def probe_client() -> AsyncIterator[httpx.AsyncClient]:
    async with serve(build_app(probe_router)) as client:
        yield client


async def test_the_connection_is_back_in_the_pool_before_the_response_is_sent(
    probe_client: httpx.AsyncClient,
) -> None:
    assert (await probe_client.get("/test/pool")).text == "0"


async def test_a_get_reads_without_begin_and_rollback(probe_client: httpx.AsyncClient) -> None:
    assert (await probe_client.get("/test/session")).json() == {"in_transaction": False}


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_other_methods_work_in_a_transaction(probe_client: httpx.AsyncClient, method: str) -> None:
    assert (await probe_client.request(method, "/test/session")).json() == {"in_transaction": True}
