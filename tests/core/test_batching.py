"""Items submitted while a round trip is in flight go together in the next one, each getting its own result."""

import asyncio

import pytest

from app.core.batching import Batcher


class Remote:
    """A stand-in round trip: records each batch, answers after the test lets it (or at once)."""

    def __init__(self, *, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.failing_calls: set[int] = set()  # which round trips (0 is the first) fail

    async def send(self, items: list[int]) -> list[int]:
        call = len(self.batches)
        self.batches.append(items)
        await self.release.wait()
        if call in self.failing_calls:
            raise ConnectionError("gone")
        return [item * 10 for item in items]


async def test_one_item_goes_at_once_alone() -> None:
    remote = Remote()
    batcher = Batcher(remote.send)

    assert await batcher.submit(1) == 10
    assert remote.batches == [[1]]


async def test_items_submitted_during_a_round_trip_share_the_next() -> None:
    remote = Remote(hold=True)
    batcher = Batcher(remote.send)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0)  # the first round trip starts, with item 0 alone
    later = [asyncio.create_task(batcher.submit(n)) for n in range(1, 51)]
    await asyncio.sleep(0)
    remote.release.set()

    assert await first == 0
    assert await asyncio.gather(*later) == [n * 10 for n in range(1, 51)]
    assert remote.batches == [[0], list(range(1, 51))]


async def test_a_batch_holds_at_most_max_batch_items() -> None:
    remote = Remote(hold=True)
    batcher = Batcher(remote.send, max_batch=4)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(10)]
    await asyncio.sleep(0)
    remote.release.set()

    assert await asyncio.gather(*tasks) == [n * 10 for n in range(10)]
    assert remote.batches == [[0], [1, 2, 3, 4], [5, 6, 7, 8], [9]]


async def test_a_failed_round_trip_fails_its_items_only() -> None:
    remote = Remote(hold=True)
    remote.failing_calls = {1}
    batcher = Batcher(remote.send, max_batch=2)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(4)]
    await asyncio.sleep(0)
    remote.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert remote.batches == [[0], [1, 2], [3]]
    assert results[0] == 0
    assert [type(result) for result in results[1:3]] == [ConnectionError, ConnectionError]
    assert results[3] == 30
    assert await batcher.submit(5) == 50  # and the batcher goes on


async def test_a_waiting_caller_that_stops_waiting_does_not_break_the_others() -> None:
    remote = Remote(hold=True)
    batcher = Batcher(remote.send)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    remote.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert results[0] == 0
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] == 20
    assert remote.batches == [[0], [1, 2]]  # once submitted, an item is sent even if its caller left


async def test_the_caller_sending_alone_can_be_cancelled_without_stranding_the_others() -> None:
    remote = Remote(hold=True)
    batcher = Batcher(remote.send)
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    tasks[0].cancel()  # it is in the round trip for item 0
    await asyncio.sleep(0)
    remote.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [10, 20]


async def test_a_wrong_number_of_results_is_an_error() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = Batcher(short)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await batcher.submit(1)


async def test_no_task_is_left_once_nothing_waits() -> None:
    remote = Remote()
    batcher = Batcher(remote.send)
    await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    await asyncio.sleep(0)

    assert batcher._sender is None
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
