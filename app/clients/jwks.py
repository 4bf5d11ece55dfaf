"""Signing keys from an identity provider's JWKS endpoint, cached and refreshed on rotation."""

import asyncio
import time
from typing import Any

import backoff
import httpx
from cachetools import TTLCache
from loguru import logger

from app.core.exceptions import AuthenticationError, ServiceUnavailableError

FETCH_TIMEOUT_SECONDS = 5.0
FETCH_MAX_TRIES = 3
# Exponential backoff between tries: random waits up to 0.2s, then 0.4s (full jitter).
FETCH_BACKOFF_FACTOR = 0.2
# An unknown `kid` forces a refetch (key rotation), but at most this often, so that tokens with
# made-up key ids cannot turn the API into a load generator against the identity provider.
MIN_REFRESH_INTERVAL_SECONDS = 30.0

_CACHE_KEY = "keys"


def _is_client_error(exc: Exception) -> bool:
    """A 4xx will not fix itself on retry; network errors and 5xx might."""
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code < 500


class JwksClient:
    def __init__(
        self,
        url: str,
        http_client: httpx.AsyncClient,
        cache_seconds: int,
        *,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL_SECONDS,
        backoff_factor: float = FETCH_BACKOFF_FACTOR,
    ) -> None:
        self.url = url
        self.http_client = http_client
        self.min_refresh_interval = min_refresh_interval
        self.backoff_factor = backoff_factor
        # cachetools' @cached does not work on coroutines; a TTLCache plus a lock does.
        self._cache: TTLCache[str, dict[str, dict[str, Any]]] = TTLCache(maxsize=1, ttl=cache_seconds)
        self._lock = asyncio.Lock()
        self._last_fetch = float("-inf")
        self._last_fetch_failed = False

    async def get_key(self, kid: str) -> dict[str, Any]:
        keys = await self._keys(force=False)
        if kid not in keys:
            keys = await self._keys(force=True)
        try:
            return keys[kid]
        except KeyError:
            raise AuthenticationError("The token was signed with an unknown key.") from None

    async def _keys(self, *, force: bool) -> dict[str, dict[str, Any]]:
        cached = self._cache.get(_CACHE_KEY)
        if cached is not None and not force:
            return cached  # the common case takes no lock
        async with self._lock:
            cached = self._cache.get(_CACHE_KEY)
            attempted_recently = time.monotonic() - self._last_fetch < self.min_refresh_interval
            if cached is not None and (not force or attempted_recently):
                return cached
            if cached is None and attempted_recently and self._last_fetch_failed:
                raise _keys_unavailable()  # don't queue every request behind another failing fetch
            # Counted from the attempt, not the success: a failing provider is asked at most once per interval.
            self._last_fetch = time.monotonic()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                self._last_fetch_failed = True
                logger.warning("JWKS fetch from {} failed: {}", self.url, exc)
                if cached is not None:
                    return cached  # a refresh for an unknown kid failed: the token is refused as unknown
                raise _keys_unavailable() from None
            self._last_fetch_failed = False
            self._cache[_CACHE_KEY] = keys
            return keys

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        fetch = backoff.on_exception(
            backoff.expo,
            httpx.HTTPError,
            max_tries=FETCH_MAX_TRIES,
            factor=self.backoff_factor,
            giveup=_is_client_error,
        )(self._fetch_once)
        return await fetch()

    async def _fetch_once(self) -> dict[str, dict[str, Any]]:
        response = await self.http_client.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("the JWKS document has no 'keys' list")
        return {key["kid"]: key for key in document["keys"] if isinstance(key, dict) and "kid" in key}


def _keys_unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("The identity provider's signing keys are unavailable.")
