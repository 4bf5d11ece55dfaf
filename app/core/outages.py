"""Outage episodes: while a dependency is down every call to it fails the same way, so say it once, not per call.

An episode starts with the first failure after `quiet_seconds` without one and goes on while failures come
closer together than that, or until a caller that can tell (its own call to the same dependency went
through) ends it with `succeeded()`. Callers log an episode's first failure at WARNING or ERROR (one Sentry
event per outage, one line an operator finds), the others at DEBUG, and its end at INFO with the count.
Used by the API's database errors (app/web/database_errors.py), its publisher (app/api/messaging/handoff.py),
the rate limiter and the worker's housekeeping and sweep.
"""

import time
from collections.abc import Callable

# Failures closer together than this belong to one outage episode.
EPISODE_QUIET_SECONDS = 60.0


class OutageEpisodes:
    """Per process, per dependency. Not locked: a miscount under a race costs at most one extra log line."""

    def __init__(self, quiet_seconds: float = EPISODE_QUIET_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.quiet_seconds = quiet_seconds
        self.clock = clock
        self._last_failure = float("-inf")
        self._failures = 0

    def failed(self) -> int:
        """Count a failure; returns how many came before it in its episode (0: this one starts an episode)."""
        now = self.clock()
        if now - self._last_failure >= self.quiet_seconds:
            self._failures = 0
        earlier = self._failures
        self._failures += 1
        self._last_failure = now
        return earlier

    def succeeded(self) -> int:
        """End the current episode, if any; returns how many failures it had (0: there was none)."""
        failures = self._failures
        if failures:
            self._failures = 0
            self._last_failure = float("-inf")
        return failures


def root_cause(exc: BaseException) -> BaseException:
    """The innermost `__cause__`: what the driver said, without the layers that re-raised it."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc
