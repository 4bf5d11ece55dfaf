"""A connection pool that serves waiting requests first come, first served.

SQLAlchemy's asyncio pool keeps idle connections in an asyncio.Queue, which lets a newcomer take a connection
that was just returned for a waiter already woken but not yet running. The woken waiter then waits again at the
back of the line, so under sustained load above the pool size some requests wait many times their share and hit
the pool timeout (a 503) while others barely wait. Here a returned connection is handed straight to the
longest-waiting request, and a newcomer takes an idle connection only when nobody is waiting.
"""

import asyncio
from collections import deque
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import await_only
from sqlalchemy.util.queue import AsyncAdaptedQueue, Empty, Full


class FairQueue(AsyncAdaptedQueue[ConnectionPoolEntry]):
    """AsyncAdaptedQueue's interface (blocking calls made from SQLAlchemy's greenlet), handing items over in order."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        super().__init__(maxsize, use_lifo)
        self._items: deque[ConnectionPoolEntry] = deque()
        self._waiters: deque[asyncio.Future[ConnectionPoolEntry]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: ConnectionPoolEntry) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # not timed out or cancelled meanwhile
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: ConnectionPoolEntry, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never holds more connections than it has room for

    def get_nowait(self) -> ConnectionPoolEntry:
        if not self._items:
            raise Empty()
        return self._items.pop() if self.use_lifo else self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> ConnectionPoolEntry:
        if self._items or not block:
            return self.get_nowait()  # nobody waits while a connection is idle: put_nowait hands it over
        item: ConnectionPoolEntry = await_only(self._wait(timeout))
        return item

    async def _wait(self, seconds: float | None) -> ConnectionPoolEntry:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[ConnectionPoolEntry] = loop.create_future()
        self._waiters.append(waiter)
        expiry = None if seconds is None else loop.call_later(seconds, _expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.put_nowait(waiter.result())  # handed over just as the request was cancelled: pass it on
            raise
        finally:
            if expiry is not None:
                expiry.cancel()


def _expire(waiter: "asyncio.Future[Any]") -> None:
    if not waiter.done():
        waiter.set_exception(Empty())


class FairAsyncQueuePool(AsyncAdaptedQueuePool):
    _queue_class = FairQueue
