"""Per-client rate limiting in Redis: a fixed window, counted atomically by a script that INCRBYs each key and
sets its EXPIRE when it is new.

Counts are coalesced, not approximated: while one script call is in flight, further hits in this process
(for any client) wait for the next call, which then counts all of them at once, one INCRBY per distinct key
(app/core/batching.py), and each hit gets its own exact position in its key's count (the i-th of n hits on a
key that reached c counts c - n + i + 1), so `allowed` and `remaining` are what one call per request would
have answered. Without concurrency it is still one call per request, sent at once by the request itself. A
call that fails fails each of its hits as a single call's failure did, and the hits queued behind it skip
Redis, as the hits after it do.

The script takes several keys, which Redis Cluster refuses unless they hash to one slot: this template
targets a single Redis (with Cluster, batch per slot or put the keys under one hash tag).

While Redis fails, requests do not wait for it one by one: after a failure the limiter skips Redis for
RETRY_AFTER_FAILURE_SECONDS (letting requests through or refusing them at once, as configured), then one
request tries it again. Without that, a Redis that accepts connections and never answers cost every request
the socket timeout. The outage is logged once, and its end (app/core/outages.py).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.batching import Batcher
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
        self._failed_calls = 0
        # Each hit: its key, and how many calls had failed when it came (a call failing after that skips it).
        self._counts: Batcher[tuple[str, int], int | None] = Batcher(self._count_hits, max_batch=MAX_HITS_PER_CALL)

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
        count = await self._counts.submit((key, self._failed_calls))
        if count is None:
            self._unavailable()
            return None
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        return RateLimitStatus(
            limit=self.limit, remaining=max(0, self.limit - count), reset_seconds=reset, allowed=count <= self.limit
        )

    async def _count_hits(self, hits: list[tuple[str, int]]) -> list[int | None]:
        """One script call for these hits (in arrival order): each hit's own count, or None if Redis failed.

        Hits that queued behind a call that failed skip Redis (None), as the hits after it do for a while.
        """
        failed_calls = self._failed_calls
        increments: dict[str, int] = {}
        for key, failed_before in hits:
            if failed_before == failed_calls:
                increments[key] = increments.get(key, 0) + 1
        counts = await self._call(increments) if increments else None
        if counts is None:
            return [None] * len(hits)
        # The first hit on a key counts the key's count before this call plus one, the next plus two...
        before = {key: count - increments[key] for key, count in zip(increments, counts, strict=True)}
        positions: list[int | None] = []
        for key, failed_before in hits:
            if failed_before != failed_calls:
                positions.append(None)
                continue
            before[key] += 1
            positions.append(before[key])
        return positions

    async def _call(self, increments: dict[str, int]) -> list[int] | None:
        """One script call: each key's count after its increment, in order; None if Redis failed."""
        try:
            counts = await self._count(keys=list(increments), args=[self.window_seconds, *increments.values()])
        except (RedisError, OSError) as exc:
            self._failed_calls += 1
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
