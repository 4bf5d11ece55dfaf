"""DeliveryLimits: slots per endpoint and in all, slow endpoints, and the turns of deferred attempts."""

import asyncio
import itertools

import pytest

from app.api.messaging.delivery_limits import DeliveryLimits, EndpointSlowError

FAST, SLOW = "https://fast.example/hook", "https://slow.example/hook"


async def _hold(limits: DeliveryLimits, endpoint: str, seconds: float, log: list[str] | None = None) -> None:
    async with limits.slot(endpoint):
        if log is not None:
            log.append(endpoint)
        await asyncio.sleep(seconds)


async def test_an_endpoint_gets_at_most_its_slots_and_the_rest_wait_in_line() -> None:
    limits = DeliveryLimits(total=100, per_endpoint=2)
    started: list[str] = []

    holders = [asyncio.create_task(_hold(limits, SLOW, 0.3, started)) for _ in range(5)]
    await asyncio.sleep(0.1)

    assert started == [SLOW, SLOW]
    assert limits.in_flight == 2
    await _hold(limits, FAST, 0, started)  # another endpoint does not wait for them
    assert started == [SLOW, SLOW, FAST]
    await asyncio.gather(*holders)
    assert started.count(SLOW) == 5
    assert limits.peak_in_flight == 3  # two to the slow endpoint, one to the fast
    assert limits.in_flight == 0


async def test_the_total_caps_every_endpoint_together() -> None:
    limits = DeliveryLimits(total=3, per_endpoint=10)

    holders = [asyncio.create_task(_hold(limits, f"https://e{i}.example/", 0.2)) for i in range(6)]
    await asyncio.sleep(0.1)

    assert limits.in_flight == 3
    await asyncio.gather(*holders)
    assert limits.peak_in_flight == 3


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=1)
    holder = asyncio.create_task(_hold(limits, SLOW, 0.2))
    await asyncio.sleep(0.05)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await _hold(limits, SLOW, 0)
    await holder

    await asyncio.wait_for(_hold(limits, SLOW, 0), 1)  # the slot is free again
    assert limits.in_flight == 0


async def test_a_wait_unless_slow_leaves_the_line_once_the_endpoint_turns_slow() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=1, slow_after=0.1)
    holder = asyncio.create_task(_hold(limits, SLOW, 0.5))
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(EndpointSlowError):
        async with limits.slot(SLOW, unless_slow=True):
            pytest.fail("no slot was free")

    assert 0.05 < loop.time() - started < 0.3  # once the attempt ahead had taken slow_after, not its 0.5 s
    await holder
    await asyncio.wait_for(_hold(limits, SLOW, 0), 1)  # its place was given back: the slot is free
    assert limits.in_flight == 0


async def test_a_wait_unless_slow_keeps_its_place_while_the_endpoint_is_quick() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=1, slow_after=1.0)
    order: list[str] = []

    async def attempt(name: str, unless_slow: bool) -> None:
        async with limits.slot(SLOW, unless_slow=unless_slow):
            order.append(name)
            await asyncio.sleep(0.08)  # longer than a look, shorter than slow_after

    tasks = [asyncio.create_task(attempt("first", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(attempt("second", True)))
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(attempt("third", False)))
    await asyncio.gather(*tasks)

    assert order == ["first", "second", "third"]  # looking whether it turned slow never lost it its place


async def test_an_endpoint_is_slow_while_an_attempt_takes_long_and_after_slow_attempts() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=4, slow_after=0.1)
    assert not limits.is_slow(SLOW)  # never seen

    holder = asyncio.create_task(_hold(limits, SLOW, 0.3))
    await asyncio.sleep(0.05)
    assert not limits.is_slow(SLOW)
    await asyncio.sleep(0.1)
    assert limits.is_slow(SLOW)  # in flight for longer than slow_after
    await holder
    assert limits.is_slow(SLOW)  # it took 0.3 s

    for _ in range(10):
        await _hold(limits, SLOW, 0)
    assert not limits.is_slow(SLOW)  # quick again

    await _hold(limits, FAST, 0)
    assert not limits.is_slow(FAST)


async def test_a_slow_endpoint_is_congested_once_a_full_line_waits() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=2, slow_after=0.05)
    holders = [asyncio.create_task(_hold(limits, SLOW, 0.3)) for _ in range(3)]
    await asyncio.sleep(0.1)
    assert limits.is_slow(SLOW)
    assert not limits.congested(SLOW)  # 2 in flight, 1 in line

    holders.append(asyncio.create_task(_hold(limits, SLOW, 0.3)))
    await asyncio.sleep(0)
    assert limits.congested(SLOW)  # 2 in line
    assert not limits.congested(FAST)
    await asyncio.gather(*holders)


async def test_deferred_attempts_are_handed_turns_at_the_endpoints_pace() -> None:
    limits = DeliveryLimits(total=10, per_endpoint=2, slow_after=0.1)
    await _hold(limits, SLOW, 0.4)  # one attempt took 0.4 s: each of 2 slots frees every 0.4 s

    turns = [limits.book(SLOW) for _ in range(4)]

    pace = 0.4 / 2
    assert turns[0] == pytest.approx(0, abs=0.05)
    assert [later - earlier for earlier, later in itertools.pairwise(turns)] == pytest.approx([pace] * 3, abs=0.05)


async def test_when_every_attempt_takes_long_no_endpoint_is_singled_out_as_slow() -> None:
    """A process too busy to keep up makes every attempt slow: deferring them all would not help."""
    limits = DeliveryLimits(total=100, per_endpoint=100, slow_after=0.05)
    endpoints = [f"https://e{i}.example/" for i in range(4)]
    for _ in range(30):
        await asyncio.gather(*(_hold(limits, endpoint, 0.1) for endpoint in endpoints))

    assert not any(limits.is_slow(endpoint) for endpoint in endpoints)
    await _hold(limits, SLOW, 1.0)
    assert limits.is_slow(SLOW)  # many times the others
