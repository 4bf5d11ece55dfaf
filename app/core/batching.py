"""Concurrent calls to a remote service folded into one round trip each time it answers.

`Batcher.submit(item)` returns the item's result. An item that finds no round trip in flight is sent at once,
alone, by its own caller (no task, no added wait). Items submitted while a round trip is in flight wait for it
to end and then go together, in submission order, in the next one (at most `max_batch` per round trip), sent
by a task of the batcher's that ends when no item waits. So an idle process pays nothing, and a busy one pays
one round trip per batch instead of one per item: on this kind of machine a round trip to Redis costs the
client about 100 us of CPU, more than building what it carries.

A failed round trip fails every item it carried, with its exception. A caller that stops waiting (cancelled,
or its deadline passed) does not take its item back once submitted: the item may still be sent; a caller
cancelled while sending its item alone strands nobody, since the others wait for the task's round trips.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

DEFAULT_MAX_BATCH = 256


class Batcher(Generic[Item, Result]):
    def __init__(
        self, send: Callable[[list[Item]], Awaitable[Sequence[Result]]], *, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        """`send(items)` makes one round trip for `items` and returns one result per item, in their order."""
        self.send = send
        self.max_batch = max_batch
        self._busy = False  # a round trip is in flight: new items wait for the next one
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        if self._busy:
            future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, future))
            return await future
        self._busy = True
        try:
            results = await self.send([item])
        finally:
            self._round_trip_done()
        _check(results, 1)
        return results[0]

    def _round_trip_done(self) -> None:
        self._busy = False
        if self._waiting:  # they queued during this round trip: the sender task takes them
            self._busy = True
            self._sender = asyncio.create_task(self._send_waiting())

    async def _send_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                try:
                    results = await self.send([item for item, _ in batch])
                    _check(results, len(batch))
                except asyncio.CancelledError:
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():  # its caller may have stopped waiting
                        future.set_result(result)
        finally:
            self._busy = False
            self._sender = None
            for _, future in self._waiting:  # only when cancelled (the loop closing): nobody sends these now
                future.cancel()
            self._waiting = []


def _check(results: Sequence[object], items: int) -> None:
    if len(results) != items:
        raise RuntimeError(f"{len(results)} results for {items} items")
