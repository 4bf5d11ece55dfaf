"""The pool serves waiting requests first come, first served, and a waiter that gives up loses nothing."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import Empty

from app.db.engine import create_engine
from app.db.pool import FairAsyncQueuePool, FairQueue
from tests.support.settings import test_settings


@pytest.fixture
async def one_connection() -> AsyncIterator[AsyncEngine]:
    engine = create_engine(test_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_SECONDS=5))
    yield engine
    await engine.dispose()


async def test_a_connection_returned_while_requests_wait_goes_to_the_first_of_them() -> None:
    queue = FairQueue(maxsize=2)
    entry: Any = object()  # a pool entry, as far as the queue is concerned
    first = asyncio.create_task(greenlet_spawn(queue.get, True, 5))
    await asyncio.sleep(0.01)  # waiting

    queue.put_nowait(entry)

    # asyncio.Queue would let a newcomer take it before the woken waiter runs, and send the waiter back in line.
    with pytest.raises(Empty):
        queue.get_nowait()
    assert await first is entry
    queue.put_nowait(entry)  # with nobody waiting it is kept
    assert queue.get_nowait() is entry


def test_the_engine_uses_the_fair_pool() -> None:
    assert isinstance(create_engine(test_settings()).sync_engine.pool, FairAsyncQueuePool)


async def test_a_waiter_that_times_out_leaves_the_connection_to_the_next(one_connection: AsyncEngine) -> None:
    engine = create_engine(test_settings(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_SECONDS=0.1))
    try:
        async with engine.connect() as held:
            await held.execute(text("SELECT 1"))
            with pytest.raises(PoolTimeoutError):
                async with engine.connect():
                    pass
        async with engine.connect() as connection:  # returned to the pool, not to the waiter that gave up
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_cancelled_waiter_passes_a_connection_handed_to_it_on(one_connection: AsyncEngine) -> None:
    async def use() -> int:
        async with one_connection.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())

    async with one_connection.connect() as held:
        await held.execute(text("SELECT 1"))
        waiting = asyncio.create_task(use())
        after = asyncio.create_task(use())
        await asyncio.sleep(0.1)  # both wait, in this order
    waiting.cancel()  # the connection was just handed to it, and it is cancelled before it runs

    assert await after == 1
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert one_connection.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
