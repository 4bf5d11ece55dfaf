"""JwksClient against a real local JWKS endpoint: caching, rotation, retries and failures."""

import asyncio

import httpx
import pytest

from app.clients.jwks import FETCH_MAX_TRIES, JwksClient
from app.core.exceptions import AuthenticationError, ServiceUnavailableError
from tests.support.jwks_provider import JwksServer, SigningKey, ec_signing_key
from tests.support.ports import closed_port


@pytest.fixture
def jwks(provider: JwksServer, http_client: httpx.AsyncClient) -> JwksClient:
    # No sleeping between retries.
    return JwksClient(provider.url, http_client, cache_seconds=300, backoff_factor=0.0)


async def test_keys_are_fetched_once_and_cached(
    jwks: JwksClient, provider: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk
    assert await jwks.get_key("ec-1") == ec_key.public_jwk
    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk

    assert provider.requests == 1


async def test_concurrent_lookups_share_one_fetch(jwks: JwksClient, provider: JwksServer) -> None:
    keys = await asyncio.gather(*(jwks.get_key("rsa-1") for _ in range(10)))

    assert len({key["kid"] for key in keys}) == 1
    assert provider.requests == 1


async def test_an_unknown_kid_refreshes_once_and_finds_a_rotated_key(jwks: JwksClient, provider: JwksServer) -> None:
    jwks.min_refresh_interval = 0.0
    await jwks.get_key("rsa-1")
    rotated = ec_signing_key("ec-2")
    provider.rotate(rotated)

    assert await jwks.get_key("ec-2") == rotated.public_jwk
    assert provider.requests == 2
    # The refreshed set is cached too.
    assert await jwks.get_key("ec-2") == rotated.public_jwk
    assert provider.requests == 2


async def test_a_kid_unknown_after_the_refresh_is_an_authentication_error(
    jwks: JwksClient, provider: JwksServer
) -> None:
    jwks.min_refresh_interval = 0.0
    await jwks.get_key("rsa-1")

    with pytest.raises(AuthenticationError, match="unknown key"):
        await jwks.get_key("made-up")

    assert provider.requests == 2


async def test_forced_refreshes_are_rate_limited(jwks: JwksClient, provider: JwksServer) -> None:
    await jwks.get_key("rsa-1")

    for _ in range(5):
        with pytest.raises(AuthenticationError):
            await jwks.get_key("made-up")

    assert provider.requests == 1


async def test_server_errors_are_retried_with_backoff(
    jwks: JwksClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    provider.fail_next(500, times=FETCH_MAX_TRIES - 1)

    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk
    assert provider.requests == FETCH_MAX_TRIES


async def test_a_provider_failing_every_try_is_service_unavailable(jwks: JwksClient, provider: JwksServer) -> None:
    provider.fail_next(503, times=FETCH_MAX_TRIES)

    with pytest.raises(ServiceUnavailableError):
        await jwks.get_key("rsa-1")

    assert provider.requests == FETCH_MAX_TRIES


async def test_client_errors_are_not_retried(jwks: JwksClient, provider: JwksServer) -> None:
    provider.fail_next(404, times=FETCH_MAX_TRIES)

    with pytest.raises(ServiceUnavailableError):
        await jwks.get_key("rsa-1")

    assert provider.requests == 1


async def test_a_failure_is_retried_once_the_refresh_interval_has_passed(
    jwks: JwksClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    provider.fail_next(404, times=1)
    with pytest.raises(ServiceUnavailableError):
        await jwks.get_key("rsa-1")
    # Within the interval a failing provider is not asked again: requests don't queue behind it.
    with pytest.raises(ServiceUnavailableError):
        await jwks.get_key("rsa-1")
    assert provider.requests == 1

    jwks.min_refresh_interval = 0.0
    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk
    assert provider.requests == 2


async def test_a_failed_refresh_for_an_unknown_kid_keeps_the_cached_keys(
    jwks: JwksClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk
    jwks.min_refresh_interval = 0.0
    provider.fail_next(500, times=10)
    with pytest.raises(AuthenticationError, match="unknown key"):
        await jwks.get_key("never-published")
    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk


@pytest.mark.parametrize("document", [b"<html>not json</html>", {"no": "keys"}, {"keys": "not-a-list"}, [1, 2]])
async def test_a_malformed_document_is_service_unavailable(
    jwks: JwksClient, provider: JwksServer, document: object
) -> None:
    provider.document = document

    with pytest.raises(ServiceUnavailableError):
        await jwks.get_key("rsa-1")

    assert provider.requests == 1


async def test_keys_without_a_kid_are_ignored(jwks: JwksClient, provider: JwksServer, rsa_key: SigningKey) -> None:
    anonymous = {name: value for name, value in rsa_key.public_jwk.items() if name != "kid"}
    provider.document = {"keys": [anonymous, "junk", rsa_key.public_jwk]}

    assert await jwks.get_key("rsa-1") == rsa_key.public_jwk


async def test_an_unreachable_provider_is_service_unavailable(http_client: httpx.AsyncClient) -> None:
    jwks = JwksClient(f"http://127.0.0.1:{closed_port()}/jwks", http_client, cache_seconds=300, backoff_factor=0.0)

    with pytest.raises(ServiceUnavailableError, match="signing keys are unavailable"):
        await jwks.get_key("rsa-1")


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def expiring(provider: JwksServer, http_client: httpx.AsyncClient, clock: Clock) -> JwksClient:
    """Cached for 300 s, then kept for up to an hour more while refreshes fail; no sleeping between retries."""
    return JwksClient(
        provider.url, http_client, cache_seconds=300, max_stale_seconds=3600, backoff_factor=0.0, clock=clock
    )


async def test_the_last_good_keys_verify_while_refreshes_fail_up_to_the_staleness_limit(
    expiring: JwksClient, provider: JwksServer, clock: Clock, rsa_key: SigningKey
) -> None:
    assert await expiring.get_key("rsa-1") == rsa_key.public_jwk
    provider.fail_next(503, times=1000)

    clock.now += 301  # the cache expired: a refresh is tried, fails, and the last good keys still verify
    assert await expiring.get_key("rsa-1") == rsa_key.public_jwk
    assert provider.requests == 1 + FETCH_MAX_TRIES
    clock.now += 10  # within the refresh interval: the failing provider is not asked again
    assert await expiring.get_key("rsa-1") == rsa_key.public_jwk
    assert provider.requests == 1 + FETCH_MAX_TRIES

    clock.now = 1000 + 300 + 3600  # the limit itself: still served
    assert await expiring.get_key("rsa-1") == rsa_key.public_jwk
    clock.now += 31  # past it, and the refresh fails again: every token is refused, as "unavailable"
    with pytest.raises(ServiceUnavailableError):
        await expiring.get_key("rsa-1")


async def test_a_refresh_after_an_outage_replaces_the_last_good_keys(
    expiring: JwksClient, provider: JwksServer, clock: Clock, rsa_key: SigningKey
) -> None:
    await expiring.get_key("rsa-1")
    provider.fail_next(503, times=FETCH_MAX_TRIES)
    clock.now += 301
    assert await expiring.get_key("rsa-1") == rsa_key.public_jwk  # served stale

    rotated = ec_signing_key("ec-2")
    provider.rotate(rotated)  # the provider is back, and withdrew rsa-1
    clock.now += 31
    assert await expiring.get_key("ec-2") == rotated.public_jwk
    with pytest.raises(AuthenticationError, match="unknown key"):
        await expiring.get_key("rsa-1")


async def test_while_a_refresh_is_under_way_stale_keys_are_served_without_waiting(
    expiring: JwksClient, provider: JwksServer, clock: Clock, rsa_key: SigningKey
) -> None:
    await expiring.get_key("rsa-1")
    clock.now += 301
    fetched = asyncio.Event()
    release = asyncio.Event()
    fetch = expiring._fetch

    async def slow_fetch() -> dict[str, dict[str, object]]:
        fetched.set()
        await release.wait()  # an identity provider that takes its time
        return await fetch()

    expiring._fetch = slow_fetch  # type: ignore[method-assign]
    refreshing = asyncio.ensure_future(expiring.get_key("rsa-1"))
    await fetched.wait()

    assert await asyncio.wait_for(expiring.get_key("rsa-1"), timeout=1.0) == rsa_key.public_jwk
    release.set()
    assert await refreshing == rsa_key.public_jwk
    assert provider.requests == 2


async def test_without_keys_fetched_before_a_failing_provider_is_unavailable_at_once(
    expiring: JwksClient, provider: JwksServer
) -> None:
    provider.fail_next(503, times=FETCH_MAX_TRIES)

    with pytest.raises(ServiceUnavailableError):
        await expiring.get_key("rsa-1")
