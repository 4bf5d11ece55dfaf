"""The rate limiter's coalesced counting, in the real Redis: hits that arrive while a call is in flight share
the next call, and each still gets the count one call per request would have given it.

The script calls are recorded (and can be held) by wrapping the Redis client's EVALSHA; every test uses
subjects of its own and a frozen clock in the middle of a window.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.clients.rate_limiter import COUNT_SCRIPT, KEY_PREFIX, MAX_HITS_PER_CALL, RateLimiter, RateLimitStatus
from app.core.config import Settings
from app.core.exceptions import ServiceUnavailableError
from tests.support.ports import closed_port
from tests.support.tcp_proxy import tcp_proxy

LIMIT = 30
WINDOW_START = 1_800_000_000  # a multiple of 60
NOW = WINDOW_START + 45.5


class Calls:
    """The limiter's script calls, each as the increments it sent; a held call (by its index) waits, before it
    is sent, until it is released."""

    def __init__(self) -> None:
        self.increments: list[list[int]] = []
        self._held: dict[int, asyncio.Event] = {}
        self._started = asyncio.Event()  # set by each call

    def hold(self, *indices: int) -> None:
        for index in indices:
            self._held[index] = asyncio.Event()

    def release(self, index: int) -> None:
        self._held[index].set()

    async def install(self, redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        # Loaded first: on a Redis that lacks it, redis-py's NOSCRIPT retry would show as a second call.
        with contextlib.suppress(RedisError, OSError):
            await redis.script_load(COUNT_SCRIPT)
        original = redis.evalsha

        async def evalsha(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
            index = len(self.increments)
            self.increments.append([int(arg) for arg in keys_and_args[numkeys + 1 :]])
            self._started.set()
            if index in self._held:
                await self._held[index].wait()
            return await original(sha, numkeys, *keys_and_args)

        monkeypatch.setattr(redis, "evalsha", evalsha)

    async def in_flight(self, count: int) -> None:
        """Until `count` calls have started."""
        async with asyncio.timeout(5):
            while len(self.increments) < count:
                self._started.clear()
                await self._started.wait()


@pytest.fixture
def prefix() -> str:
    return f"limiter-{uuid.uuid4().hex}"


@pytest.fixture
async def redis(settings: Settings, prefix: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    keys = [key async for key in client.scan_iter(f"{KEY_PREFIX}:{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def calls(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Calls:
    recorded = Calls()
    await recorded.install(redis, monkeypatch)
    return recorded


@pytest.fixture
def limiter(redis: Redis) -> RateLimiter:
    return RateLimiter(redis, LIMIT, fail_open=True, clock=lambda: NOW)


def key(client: str) -> str:
    return f"{KEY_PREFIX}:{client}:{WINDOW_START}"


def remaining(statuses: list[RateLimitStatus | None]) -> list[int]:
    return [status.remaining for status in statuses if status is not None]


def sequential(hits: int, limit: int = LIMIT) -> tuple[list[int], list[bool]]:
    """What one call per request answers to `hits` requests in a row: remaining and allowed."""
    return [max(0, limit - n) for n in range(1, hits + 1)], [n <= limit for n in range(1, hits + 1)]


async def test_concurrent_hits_of_several_clients_count_as_one_after_the_other(
    limiter: RateLimiter, redis: Redis, calls: Calls, prefix: str
) -> None:
    clients = [f"{prefix}-{n}" for n in range(3)]
    order = [client for _ in range(50) for client in clients]  # interleaved

    statuses = await asyncio.gather(*(limiter.hit(client) for client in order))

    for client in clients:
        mine = [status for status, of in zip(statuses, order, strict=True) if of == client]
        assert all(status is not None for status in mine)
        assert remaining(mine) == sequential(50)[0]  # 29..0, then 0
        assert [status.allowed for status in mine if status is not None] == sequential(50)[1]  # exactly 30
        assert await redis.get(key(client)) == b"50"
        assert 0 < await redis.ttl(key(client)) <= 60
    assert len(calls.increments) == 2  # the first hit's own call, then one for the 149 that waited


async def test_hits_that_arrive_during_a_call_wait_for_the_next_one(
    limiter: RateLimiter, calls: Calls, prefix: str
) -> None:
    a, b = f"{prefix}-a", f"{prefix}-b"
    calls.hold(0)
    first = asyncio.create_task(limiter.hit(a))
    await calls.in_flight(1)
    waiting = [asyncio.create_task(limiter.hit(client)) for client in [a, b, a, a, b]]
    await asyncio.sleep(0.01)
    assert len(calls.increments) == 1  # none sent a call of its own

    calls.release(0)
    statuses = [await first, *await asyncio.gather(*waiting)]

    assert calls.increments == [[1], [3, 2]]  # one call: a by 3, b by 2
    assert remaining(statuses) == [LIMIT - 1, LIMIT - 2, LIMIT - 1, LIMIT - 3, LIMIT - 4, LIMIT - 2]
    assert limiter._counts._sender is None  # the task that sent it has ended


async def test_a_call_counts_at_most_max_hits_per_call(limiter: RateLimiter, calls: Calls, prefix: str) -> None:
    limiter.limit = 1000
    statuses = await asyncio.gather(*(limiter.hit(prefix) for _ in range(600)))

    assert calls.increments == [[1], [MAX_HITS_PER_CALL], [MAX_HITS_PER_CALL], [600 - 1 - 2 * MAX_HITS_PER_CALL]]
    assert remaining(statuses) == sequential(600, 1000)[0]


async def test_without_concurrency_each_hit_sends_its_own_call_at_once(
    limiter: RateLimiter, calls: Calls, prefix: str
) -> None:
    tasks = asyncio.all_tasks()
    statuses = [await limiter.hit(prefix) for _ in range(3)]

    assert calls.increments == [[1], [1], [1]]
    assert remaining(statuses) == [LIMIT - 1, LIMIT - 2, LIMIT - 3]
    assert asyncio.all_tasks() == tasks  # sent by the requests themselves, no task started


async def test_no_task_is_left_after_the_last_hit(limiter: RateLimiter, prefix: str) -> None:
    tasks = asyncio.all_tasks()
    await asyncio.gather(*(limiter.hit(f"{prefix}-{n % 4}") for n in range(100)))

    assert asyncio.all_tasks() == tasks
    assert limiter._counts._sender is None
    assert not limiter._counts._busy


def test_constructing_a_limiter_needs_no_event_loop(settings: Settings) -> None:
    limiter = RateLimiter(Redis.from_url(settings.redis_url), LIMIT, fail_open=True)
    assert limiter._counts._sender is None


async def test_only_a_new_key_gets_its_expiry(limiter: RateLimiter, redis: Redis, calls: Calls, prefix: str) -> None:
    old, new = f"{prefix}-old", f"{prefix}-new"
    await redis.set(key(old), 3, ex=20)
    calls.hold(0)
    first = asyncio.create_task(limiter.hit(f"{prefix}-first"))
    await calls.in_flight(1)
    waiting = [asyncio.create_task(limiter.hit(client)) for client in [old, new, old]]
    calls.release(0)
    await first
    statuses = await asyncio.gather(*waiting)

    assert remaining(statuses) == [LIMIT - 4, LIMIT - 1, LIMIT - 5]
    assert 0 < await redis.ttl(key(old)) <= 20  # not pushed back by the count
    assert 20 < await redis.ttl(key(new)) <= 60


async def test_hits_across_a_window_boundary_count_in_their_own_windows(
    redis: Redis, calls: Calls, prefix: str
) -> None:
    times = iter([NOW, WINDOW_START + 59.9, WINDOW_START + 60.1, WINDOW_START + 60.2])
    limiter = RateLimiter(redis, LIMIT, fail_open=True, clock=lambda: next(times))

    statuses = await asyncio.gather(*(limiter.hit(prefix) for _ in range(4)))

    assert calls.increments == [[1], [1, 2]]
    assert remaining(statuses) == [LIMIT - 1, LIMIT - 2, LIMIT - 1, LIMIT - 2]
    assert [status.reset_seconds for status in statuses if status is not None] == [15, 1, 60, 60]
    assert await redis.get(f"{KEY_PREFIX}:{prefix}:{WINDOW_START + 60}") == b"2"


async def test_a_cancelled_waiting_hit_breaks_nothing(
    limiter: RateLimiter, redis: Redis, calls: Calls, prefix: str
) -> None:
    a, b = f"{prefix}-a", f"{prefix}-b"
    calls.hold(0)
    first = asyncio.create_task(limiter.hit(b))
    await calls.in_flight(1)
    waiting = [asyncio.create_task(limiter.hit(client)) for client in [a, a, b, a]]
    await asyncio.sleep(0)
    waiting[1].cancel()  # its client went away
    calls.release(0)
    outcomes = await asyncio.gather(first, *waiting, return_exceptions=True)

    assert isinstance(outcomes[2], asyncio.CancelledError)
    others = [outcome for outcome in outcomes if isinstance(outcome, RateLimitStatus)]
    assert len(others) == 4
    # Its count was sent with the others: a's third hit is its third count.
    assert remaining(list(others)) == [LIMIT - 1, LIMIT - 1, LIMIT - 2, LIMIT - 3]
    assert await redis.get(key(a)) == b"3"
    assert limiter._counts._sender is None


async def test_a_cancelled_hit_with_its_call_in_flight_does_not_strand_the_waiting_ones(
    limiter: RateLimiter, calls: Calls, prefix: str
) -> None:
    a, b = f"{prefix}-a", f"{prefix}-b"
    calls.hold(0)
    first = asyncio.create_task(limiter.hit(a))
    await calls.in_flight(1)
    waiting = [asyncio.create_task(limiter.hit(client)) for client in [a, b, a]]
    await asyncio.sleep(0)

    first.cancel()  # its call was not sent yet (held): it counts nothing
    async with asyncio.timeout(5):
        statuses = await asyncio.gather(*waiting)

    assert first.cancelled()
    assert remaining(statuses) == [LIMIT - 1, LIMIT - 1, LIMIT - 2]
    assert calls.increments == [[1], [2, 1]]


async def test_the_calls_task_cancelled_leaves_no_hit_waiting(limiter: RateLimiter, calls: Calls, prefix: str) -> None:
    calls.hold(0, 1)
    first = asyncio.create_task(limiter.hit(prefix))
    await calls.in_flight(1)
    waiting = [asyncio.create_task(limiter.hit(prefix)) for _ in range(3)]
    await asyncio.sleep(0)
    calls.release(0)
    await first
    await calls.in_flight(2)  # held
    assert limiter._counts._sender is not None
    limiter._counts._sender.cancel()  # as when the event loop closes

    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)

    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    assert not limiter._counts._busy
    assert await limiter.hit(f"{prefix}-after") is not None  # the next hit is counted as ever


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_redis_that_refuses_connections_fails_every_hit_open_or_closed(
    fail_open: bool, monkeypatch: pytest.MonkeyPatch, warnings: list[str], prefix: str
) -> None:
    refusing = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=2)
    refused = Calls()
    await refused.install(refusing, monkeypatch)
    limiter = RateLimiter(refusing, LIMIT, fail_open=fail_open, clock=lambda: NOW)

    outcomes = await asyncio.gather(*(limiter.hit(f"{prefix}-{n % 3}") for n in range(20)), return_exceptions=True)
    later = await asyncio.gather(limiter.hit(prefix), return_exceptions=True)
    await refusing.aclose()

    expected: type[object] = type(None) if fail_open else ServiceUnavailableError
    assert all(isinstance(outcome, expected) for outcome in [*outcomes, *later]), outcomes
    # The first hit asked Redis; the ones that queued behind it, and the one after, skipped it.
    assert refused.increments == [[1]]
    unavailable = [message for message in warnings if "Rate limiting is unavailable" in message]
    assert len(unavailable) == 1
    assert ("allowing requests" in unavailable[0]) is fail_open


@pytest.mark.parametrize("fail_open", [True, False])
async def test_a_failed_call_fails_each_of_its_hits_and_those_queued_behind_it(
    fail_open: bool, settings: Settings, monkeypatch: pytest.MonkeyPatch, warnings: list[str], prefix: str
) -> None:
    async with tcp_proxy(settings.REDIS_HOST, settings.REDIS_PORT) as proxy:
        redis = Redis.from_url(f"redis://127.0.0.1:{proxy.port}/{settings.REDIS_DB}", socket_timeout=2)
        calls = Calls()
        await calls.install(redis, monkeypatch)
        limiter = RateLimiter(redis, LIMIT, fail_open=fail_open, clock=lambda: NOW)
        calls.hold(0, 1)
        first = asyncio.create_task(limiter.hit(prefix))
        await calls.in_flight(1)
        batch = [asyncio.create_task(limiter.hit(f"{prefix}-{n % 2}")) for n in range(6)]
        calls.release(0)
        await first
        await calls.in_flight(2)  # the batch's call, held
        queued = [asyncio.create_task(limiter.hit(f"{prefix}-{n % 2}")) for n in range(4)]
        await asyncio.sleep(0)
        proxy.cut()
        calls.release(1)
        outcomes = await asyncio.gather(*batch, *queued, return_exceptions=True)
        accepted = proxy.accepted
        later = await asyncio.gather(limiter.hit(prefix), return_exceptions=True)
        skipped = proxy.accepted == accepted
        proxy.restore()
        await redis.delete(key(prefix))  # the first hit's count
        await redis.aclose()

    expected: type[object] = type(None) if fail_open else ServiceUnavailableError
    assert all(isinstance(outcome, expected) for outcome in [*outcomes, *later]), outcomes
    assert calls.increments == [[1], [3, 3]]  # the queued four never asked
    assert skipped
    unavailable = [message for message in warnings if "Rate limiting is unavailable" in message]
    assert len(unavailable) == 1
