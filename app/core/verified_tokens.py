"""The tokens a process verified lately, so that a client's next requests with the same token skip the
signature check and the claims parsing (some 100 us of CPU each, the largest part of authenticating).

A token is only ever looked up by its whole text, signature included: an entry stands for exactly the bytes
that were verified, so it can only answer for the same token again. What can change while the same token is
sent again is time, so its expiry is checked on every request (with the configured leeway, as the full check
does); a token expired since it was verified is then verified in full again (and refused there, with the
usual message). An entry lives at most MAX_AGE_SECONDS whatever the token's expiry: a signing key withdrawn
from the identity provider's JWKS stops being honoured for cached tokens within that time (the JWKS cache
itself keeps keys for minutes). Bounded: past MAX_ENTRIES the oldest entries make room.
"""

import time
from collections.abc import Callable
from typing import Generic, TypeVar

MAX_ENTRIES = 4096  # a few hundred bytes each: about a megabyte at most
MAX_AGE_SECONDS = 60.0

T = TypeVar("T")


class VerifiedTokens(Generic[T]):
    def __init__(
        self,
        *,
        leeway_seconds: float,
        max_entries: int = MAX_ENTRIES,
        max_age_seconds: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leeway_seconds = leeway_seconds
        self.max_entries = max_entries
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        # token -> (what verifying it gave, until when that answer may be given without verifying it again)
        self._entries: dict[str, tuple[T, float]] = {}

    def get(self, token: str) -> T | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        value, valid_until = entry
        if self.clock() >= valid_until:
            del self._entries[token]
            return None
        return value

    def add(self, token: str, value: T, expires_at: float) -> None:
        """Remember `token` (verified, expiring at `expires_at`, a Unix time) as giving `value`."""
        now = self.clock()
        valid_until = min(expires_at + self.leeway_seconds, now + self.max_age_seconds)
        if valid_until <= now:
            return
        entries = self._entries
        while len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # dicts keep insertion order: the oldest first
        entries[token] = (value, valid_until)

    def __len__(self) -> int:
        return len(self._entries)
