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
