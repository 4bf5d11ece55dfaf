"""Per-client rate limiting in Redis: a fixed window, counted with one atomic INCR + EXPIRE per request.

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

from app.core.exceptions import ServiceUnavailableError
from app.core.outages import OutageEpisodes

WINDOW_SECONDS = 60
KEY_PREFIX = "ratelimit"
# After a failure, Redis is not asked again for this long (then by one request, while the others go on).
RETRY_AFTER_FAILURE_SECONDS = 5.0
# The count and its expiry in one command: a script runs atomically, so no key can live forever, and it is one
# round trip with one reply (a MULTI/INCR/EXPIRE/EXEC pipeline has four replies to parse: twice the client CPU).
# redis-py sends it by its SHA1 (EVALSHA) and loads it again itself should Redis have lost it.
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
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
    limit across a window boundary) but cost one round trip and one small key per client and window."""

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
        try:
            count = int(await self._count(keys=[key], args=[self.window_seconds]))
        except (RedisError, OSError) as exc:
            self._skip_until = self.monotonic() + RETRY_AFTER_FAILURE_SECONDS
            self._log_failure(exc)
            self._unavailable()
            return None
        if self._skip_until != float("-inf"):
            self._skip_until = float("-inf")
            logger.info("Rate limiting works again, after {} failed tries", self.outage.succeeded())
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        return RateLimitStatus(
            limit=self.limit, remaining=max(0, self.limit - count), reset_seconds=reset, allowed=count <= self.limit
        )

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
