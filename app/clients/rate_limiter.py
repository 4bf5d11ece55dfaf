"""Per-client rate limiting in Redis: a fixed window, counted with one atomic INCR + EXPIRE per request."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.exceptions import ServiceUnavailableError

WINDOW_SECONDS = 60
KEY_PREFIX = "ratelimit"
# While Redis is down every request would log it; say so at most this often per process.
UNAVAILABLE_WARNING_INTERVAL_SECONDS = 60.0
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
    ) -> None:
        self.redis = redis
        self.limit = limit
        self.fail_open = fail_open
        self.window_seconds = window_seconds
        self.clock = clock
        self._warned_at = float("-inf")
        self._count = redis.register_script(COUNT_SCRIPT)  # no I/O until the first call

    async def hit(self, client: str) -> RateLimitStatus | None:
        """Count a request of `client`. None if Redis is unavailable and the limiter fails open."""
        now = self.clock()
        window_start = int(now // self.window_seconds) * self.window_seconds
        key = f"{KEY_PREFIX}:{client}:{window_start}"
        try:
            count = int(await self._count(keys=[key], args=[self.window_seconds]))
        except (RedisError, OSError) as exc:
            self._unavailable(exc)
            return None
        reset = max(1, math.ceil(window_start + self.window_seconds - now))
        return RateLimitStatus(
            limit=self.limit, remaining=max(0, self.limit - count), reset_seconds=reset, allowed=count <= self.limit
        )

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= UNAVAILABLE_WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            outcome = "allowing requests unlimited (RATE_LIMIT_FAIL_OPEN)" if self.fail_open else "refusing requests"
            logger.warning("Rate limiting is unavailable, {}: {!r}", outcome, exc)
        if not self.fail_open:
            raise ServiceUnavailableError("Rate limiting is unavailable; try again shortly.")
