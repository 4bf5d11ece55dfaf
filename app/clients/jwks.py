"""Signing keys from an identity provider's JWKS endpoint, cached and refreshed on rotation.

The key set fetched last is kept: while refreshes fail it still verifies tokens for up to
`max_stale_seconds` past its cache lifetime, so an outage of the identity provider's endpoint does not reject
every token the moment the cache expires. A successful refresh replaces it at once (a key the provider
withdrew stops verifying).
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import backoff
import httpx
from loguru import logger

from app.core.exceptions import AuthenticationError, ServiceUnavailableError

FETCH_TIMEOUT_SECONDS = 5.0
FETCH_MAX_TRIES = 3
# Exponential backoff between tries: random waits up to 0.2s, then 0.4s (full jitter).
FETCH_BACKOFF_FACTOR = 0.2
# An unknown `kid` forces a refetch (key rotation), but at most this often, so that tokens with
# made-up key ids cannot turn the API into a load generator against the identity provider.
MIN_REFRESH_INTERVAL_SECONDS = 30.0
DEFAULT_MAX_STALE_SECONDS = 86_400.0

Keys = dict[str, dict[str, Any]]


def _is_client_error(exc: Exception) -> bool:
    """A 4xx will not fix itself on retry; network errors and 5xx might."""
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500


class JwksClient:
    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient,
        cache_seconds: float,
        *,
        max_stale_seconds: float = DEFAULT_MAX_STALE_SECONDS,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL_SECONDS,
        backoff_factor: float = FETCH_BACKOFF_FACTOR,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.http_client = http_client
        self.cache_seconds = cache_seconds
        self.max_stale_seconds = max_stale_seconds
        self.min_refresh_interval = min_refresh_interval
        self.backoff_factor = backoff_factor
        self.clock = clock
        self._keys: Keys | None = None  # the last good key set, and when it was fetched
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._last_fetch = float("-inf")

    async def get_key(self, kid: str) -> dict[str, Any]:
        keys = await self._current(force=False)
        if kid not in keys:
            keys = await self._current(force=True)
        try:
            return keys[kid]
        except KeyError:
            raise AuthenticationError("The token was signed with an unknown key.") from None

    def _age(self) -> float:
        return self.clock() - self._fetched_at

    def _usable(self) -> Keys | None:
        """The last good key set, unless it is more than max_stale_seconds past its cache lifetime."""
        if self._keys is not None and self._age() <= self.cache_seconds + self.max_stale_seconds:
            return self._keys
        return None

    async def _current(self, *, force: bool) -> Keys:
        if self._keys is not None and not force and self._age() < self.cache_seconds:
            return self._keys  # the common case takes no lock
        usable = self._usable()
        if usable is not None and self._lock.locked():
            return usable  # a refresh is under way: don't queue requests behind it while keys are at hand
        async with self._lock:
            cached = self._keys
            attempted_recently = self.clock() - self._last_fetch < self.min_refresh_interval
            if cached is not None and self._age() < self.cache_seconds and (not force or attempted_recently):
                return cached
            if attempted_recently:
                # Counted from the attempt, not the success: a failing provider is asked at most once per interval.
                return self._last_good()
            self._last_fetch = self.clock()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                kept = "" if self._usable() is None else f"; verifying with the keys fetched {self._age():.0f} s ago"
                logger.warning("JWKS fetch from {} failed: {}{}", self.url, exc, kept)
                return self._last_good()
            self._keys, self._fetched_at = keys, self.clock()
            return keys

    def _last_good(self) -> Keys:
        usable = self._usable()
        if usable is None:
            raise _keys_unavailable()
        return usable

    async def _fetch(self) -> Keys:
        fetch = backoff.on_exception(
            backoff.expo,
            httpx.HTTPError,
            max_tries=FETCH_MAX_TRIES,
            factor=self.backoff_factor,
            giveup=_is_client_error,
        )(self._fetch_once)
        return await fetch()

    async def _fetch_once(self) -> Keys:
        response = await self.http_client.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the JWKS document has no 'keys' list")
        return {key["kid"]: key for key in document["keys"] if isinstance(key, dict) and "kid" in key}


def _keys_unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("The identity provider's signing keys are unavailable.")
