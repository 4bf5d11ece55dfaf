"""Per-client rate limiting in Redis: a fixed window, counted atomically by a script that INCRBYs each key and
sets its EXPIRE when it is new.

Counts are coalesced, not approximated: while one script call is in flight, further hits in this process
(for any client) wait for the next call, which then counts all of them at once, one INCRBY per distinct key,
and each hit gets its own exact position in its key's count (the i-th of n hits on a key that reached c
counts c - n + i + 1), so `allowed` and `remaining` are what one call per request would have answered.
Without concurrency it is still one call per request, sent at once by the request itself (a call that
counts no other hit). The calls for hits that waited are sent by a task of the limiter's, so a request that
is cancelled (its client gone) strands nobody; the task ends when no hit is left waiting. A batch that
fails fails each of its hits as a single call's failure did (and the hits queued behind it skip Redis).

The script takes several keys, which Redis Cluster refuses unless they hash to one slot: this template
targets a single Redis (with Cluster, batch per slot or put the keys under one hash tag).

While Redis fails, requests do not wait for it one by one: after a failure the limiter skips Redis for
RETRY_AFTER_FAILURE_SECONDS (letting requests through or refusing them at once, as configured), then one
request tries it again. Without that, a Redis that accepts connections and never answers cost every request
the socket timeout. The outage is logged once, and its end (app/core/outages.py).
"""

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.exceptions import ServiceUnavailableError
from app.core.outages import OutageEpisodes

WINDOW_SECONDS = 60
KEY_PREFIX = "ratelimit"
# After a failure, Redis is not asked again for this long (then by one request, while the others go on).
RETRY_AFTER_FAILURE_SECONDS = 5.0
# At most this many hits per script call (its KEYS and ARGV, its reply); the rest wait for the next call.
MAX_HITS_PER_CALL = 256
# Every count and its expiry in one command: a script runs atomically, so no key can live forever, and it is
# one round trip with one reply. ARGV[1] is the window, ARGV[i + 1] the increment of KEYS[i]. A key whose
# count equals its increment was new. One key's count comes back as a plain integer: redis-py's pure-Python
# parser spent about 8 us more per call on an array, and the call of a request alone is the common case.
# redis-py sends the script by its SHA1 (EVALSHA) and loads it again itself should Redis have lost it.
COUNT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
    local increment = tonumber(ARGV[i + 1])
    local count = redis.call('INCRBY', key, increment)
    if count == increment then
        redis.call('EXPIRE', key, ARGV[1])
    end
    counts[i] = count
end
if #counts == 1 then
    return counts[1]
end
return counts
"""

# A hit waiting for its count: its key, and the future that gets the count (None: Redis is unavailable).
_Hit = tuple[str, asyncio.Future[int | None]]


@dataclass(frozen=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_seconds: int  # until the current window ends and the count starts again
    allowed: bool

    def headers(self) -> dict[str, str]:
        """The `RateLimit-*` fields of draft-ietf-httpapi-ratelimit-headers (reset as delta-seconds)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateLimiter:
    """`limit` requests per client per window. Fixed windows are coarse (a client can send up to twice the
    limit across a window boundary) but cost one small key per client and window, and at most one round trip
    per request (fewer under concurrency: see the module's docstring)."""

    def __init__(
        self,
        redis: Redis,
        limit: int,
        *,
        fail_open: bool,
        window_seconds: int = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.fail_open = fail_open
        self.window_seconds = window_seconds
        self.clock = clock
        self.monotonic = monotonic
        self.outage = OutageEpisodes(clock=monotonic)
        self._skip_until = float("-inf")  # while Redis is failing: until when requests do not ask it
        self._count = redis.register_script(COUNT_SCRIPT)  # no I/O until the first call
        self._waiting: list[_Hit] = []  # hits for the next call, in arrival order
        self._busy = False  # a call is in flight: hits wait for the next one
        self._calls: asyncio.Task[None] | None = None  # sends the calls for waiting hits; None when none wait

    async def hit(self, client: str) -> RateLimitStatus | None:
        """Count a request of `client`. None if Redis is unavailable and the limiter fails open."""
        if self._skip_until != float("-inf"):  # Redis failed lately
            now = self.monotonic()
            if now < self._skip_until:
                self._unavailable()
                return None
            self._skip_until = now + RETRY_AFTER_FAILURE_SECONDS  # this request tries it; the others skip it
        now = self.clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        key = f"{KEY_PREFIX}:{client}:{window_start}"
        if self._busy:
            counted: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
            self._waiting.append((key, counted))
            # Cancelling this request cancels only its future: its count may still be sent, the call goes on.
            count = await counted
        else:
            count = await self._count_alone(key)
        if count is None:
            self._unavailable()
            return None
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        return RateLimitStatus(
            limit=self.limit, remaining=max(0, self.limit - count), reset_seconds=reset, allowed=count <= self.limit
        )

    async def _count_alone(self, key: str) -> int | None:
        """Nothing in flight: this request sends its own call at once (no task, no hop through the loop). It
        counts only this hit, so cancelling the request strands nobody; the hits that queued meanwhile get the
        next call, from a task of the limiter's."""
        self._busy = True
        try:
            counts = await self._call({key: 1})
        except BaseException:  # cancelled (the client gone), or a bug
            self._call_done(failed=False)
            raise
        self._call_done(failed=counts is None)
        return None if counts is None else counts[0]

    def _call_done(self, *, failed: bool) -> None:
        """After a call: the hits that queued meanwhile get the next one, or, if Redis failed, skip it too."""
        self._busy = False
        if not self._waiting:
            return
        if failed:
            waiting, self._waiting = self._waiting, []
            _settle(waiting, None)
        else:
            self._busy = True
            self._calls = asyncio.create_task(self._send_calls())

    async def _send_calls(self) -> None:
        """One call after the other while hits wait, each for the hits that queued during the last (at most
        MAX_HITS_PER_CALL), each hit given its own place in its key's count."""
        batch: list[_Hit] = []
        try:
            while self._waiting:
                batch = self._waiting[:MAX_HITS_PER_CALL]
                del self._waiting[:MAX_HITS_PER_CALL]
                increments: dict[str, int] = {}
                for key, _ in batch:
                    increments[key] = increments.get(key, 0) + 1
                counts = await self._call(increments)
                if counts is None:  # Redis is skipped from now on, for the hits that queued meanwhile too
                    batch += self._waiting
                    self._waiting = []
                    _settle(batch, None)
                    break
                # The first hit on a key counts the key's count before this call plus one, the next plus two...
                before = {key: count - increments[key] for key, count in zip(increments, counts, strict=True)}
                for key, counted in batch:
                    before[key] += 1
                    if not counted.done():  # done: its request was cancelled
                        counted.set_result(before[key])
                batch = []
        except asyncio.CancelledError as exc:  # the loop is closing: nobody is left waiting
            _settle(batch + self._waiting, exc)
            self._waiting = []
            raise
        except Exception as exc:  # a bug: the waiting requests raise it, not this task nobody awaits
            _settle(batch + self._waiting, exc)
            self._waiting = []
        finally:
            self._busy = False
            self._calls = None

    async def _call(self, increments: dict[str, int]) -> list[int] | None:
        """One script call: each key's count after its increment, in order; None if Redis failed."""
        try:
            counts = await self._count(keys=list(increments), args=[self.window_seconds, *increments.values()])
        except (RedisError, OSError) as exc:
            self._skip_until = self.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            self._log_failure(exc)
            return None
        if self._skip_until != float("-inf"):
            self._skip_until = float("-inf")
            logger.info("Rate limiting works again, after {} failed tries", self.outage.succeeded())
        return [int(count) for count in counts] if isinstance(counts, list) else [int(counts)]

    def _log_failure(self, exc: Exception) -> None:
        if self.outage.failed() == 0:
            outcome = "allowing requests unlimited (RATE_LIMIT_FAIL_OPEN)" if self.fail_open else "refusing requests"
            logger.warning(
                "Rate limiting is unavailable, {}; Redis is tried again every {:g} s: {!r}",
                outcome,
                RETRY_AFTER_FAILURE_SECONDS,
                exc,
            )
        else:
            logger.debug("Rate limiting still unavailable: {!r}", exc)

    def _unavailable(self) -> None:
        if not self.fail_open:
            raise ServiceUnavailableError("Rate limiting is unavailable; try again shortly.")


def _settle(hits: list[_Hit], outcome: BaseException | None) -> None:
    """Answer every hit still waiting: None (Redis unavailable), or the exception that ended the calls."""
    for _, counted in hits:
        if counted.done():
            continue
        if outcome is None:
            counted.set_result(None)
        elif isinstance(outcome, asyncio.CancelledError):
            counted.cancel()
        else:
            counted.set_exception(outcome)
