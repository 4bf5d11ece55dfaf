"""The API in JWKS mode (JWT_JWKS_URL set): RS256/ES256 tokens from a real local identity provider."""

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jose import jwt

from app.clients.jwks import FETCH_MAX_TRIES, JwksClient
from app.core.config import DEV_JWT_SECRET
from app.core.time import utcnow
from tests.support.apps import build_app, serve
from tests.support.jwks_provider import JwksServer, SigningKey, rsa_signing_key
from tests.support.ports import closed_port
from tests.support.problems import assert_problem

AUDIENCE = "https://api.example.com"
INVALID_TOKEN = 'Bearer error="invalid_token"'


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(utcnow().timestamp())
    return {"sub": "idp-client", "scope": "messages:read", "aud": AUDIENCE, "iat": now, "exp": now + 300, **overrides}


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def keys_of(app: FastAPI) -> JwksClient:
    """The JWKS client the app's lifespan built; tests tune its waits, never the code's constants."""
    jwks = app.state.token_verifier.jwks
    assert isinstance(jwks, JwksClient)
    return jwks


@pytest.fixture
async def jwks_app(provider: JwksServer) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = build_app(JWT_JWKS_URL=provider.url, JWT_AUDIENCE=AUDIENCE)
    async with serve(app) as http_client:
        keys_of(app).backoff_factor = 0.0  # retries without sleeping in between
        yield app, http_client


@pytest.fixture
def jwks_client(jwks_app: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return jwks_app[1]


@pytest.fixture
def eager_refresh(jwks_app: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """An unknown kid refreshes the key set every time (no minimum interval between refreshes)."""
    keys_of(jwks_app[0]).min_refresh_interval = 0.0


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("key_name", ["rsa_key", "ec_key"])
async def test_provider_tokens_authenticate(
    jwks_client: httpx.AsyncClient, provider: JwksServer, request: pytest.FixtureRequest, key_name: str
) -> None:
    key: SigningKey = request.getfixturevalue(key_name)

    response = await me(jwks_client, key.sign(claims()))

    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "idp-client", "scopes": ["messages:read"]}
    assert provider.requests == 1


async def test_keys_are_cached_across_requests(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    for token in (rsa_key.sign(claims()), ec_key.sign(claims()), rsa_key.sign(claims(sub="other"))):
        assert (await me(jwks_client, token)).status_code == 200

    assert provider.requests == 1


async def test_a_rotated_key_is_picked_up_with_one_refresh(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey, eager_refresh: None
) -> None:
    assert (await me(jwks_client, rsa_key.sign(claims()))).status_code == 200
    new_key = rsa_signing_key("rsa-2")
    provider.rotate(new_key)

    response = await me(jwks_client, new_key.sign(claims()))

    assert response.status_code == 200
    assert provider.requests == 2


async def test_an_unknown_key_id_is_401(
    jwks_client: httpx.AsyncClient, provider: JwksServer, eager_refresh: None
) -> None:
    stranger = rsa_signing_key("not-published")

    response = await me(jwks_client, stranger.sign(claims()))

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert "unknown key" in body["detail"]
    assert provider.requests == 2  # the first fetch, then exactly one refresh


async def test_a_forged_signature_under_a_published_kid_is_401(jwks_client: httpx.AsyncClient) -> None:
    forger = rsa_signing_key("forger")

    response = await me(jwks_client, forger.sign(claims(), kid="rsa-1"))

    body = assert_problem(response, 401)
    assert "signature is not valid" in body["detail"]


async def test_an_es256_token_under_an_rsa_kid_is_401(jwks_client: httpx.AsyncClient, ec_key: SigningKey) -> None:
    response = await me(jwks_client, ec_key.sign(claims(), kid="rsa-1"))

    body = assert_problem(response, 401)
    assert body["detail"] == "The token's algorithm does not match its signing key."


async def test_a_key_type_mismatch_without_alg_in_the_jwks_is_401_not_500(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey, ec_key: SigningKey
) -> None:
    # Some providers publish keys without "alg"; python-jose then fails with JWKError on an RSA key for ES256.
    provider.document = {"keys": [{k: v for k, v in rsa_key.public_jwk.items() if k != "alg"}]}

    response = await me(jwks_client, ec_key.sign(claims(), kid="rsa-1"))

    body = assert_problem(response, 401)
    assert "signature is not valid" in body["detail"]


async def test_keys_without_alg_still_verify(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    provider.document = {"keys": [{k: v for k, v in rsa_key.public_jwk.items() if k != "alg"}]}

    assert (await me(jwks_client, rsa_key.sign(claims()))).status_code == 200


async def test_a_token_without_kid_is_401(jwks_client: httpx.AsyncClient, rsa_key: SigningKey) -> None:
    token = jwt.encode(claims(), rsa_key.private_pem, algorithm="RS256")

    body = assert_problem(await me(jwks_client, token), 401)
    assert "kid" in body["detail"]


async def test_audience_is_still_checked(jwks_client: httpx.AsyncClient, rsa_key: SigningKey) -> None:
    body = assert_problem(await me(jwks_client, rsa_key.sign(claims(aud="https://other.example.com"))), 401)

    assert "Invalid audience" in body["detail"]


async def test_hs256_is_refused_in_jwks_mode(jwks_client: httpx.AsyncClient, provider: JwksServer) -> None:
    token = jwt.encode(claims(), DEV_JWT_SECRET, algorithm="HS256", headers={"kid": "rsa-1"})

    body = assert_problem(await me(jwks_client, token), 401)
    assert body["detail"] == "Token algorithm must be one of RS256, ES256."
    assert provider.requests == 0


async def test_hmac_with_the_public_key_as_secret_is_refused(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    # The classic algorithm-confusion attack: "sign" with HS256, using the provider's public key as the secret.
    signing_input = f"{b64url({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64url(claims())}"
    mac = hmac.new(rsa_key.public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    assert_problem(await me(jwks_client, token), 401)
    assert provider.requests == 0


async def test_provider_errors_are_retried(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    provider.fail_next(500, times=FETCH_MAX_TRIES - 1)

    response = await me(jwks_client, rsa_key.sign(claims()))

    assert response.status_code == 200
    assert provider.requests == FETCH_MAX_TRIES


async def test_a_provider_answering_404_is_not_retried(
    jwks_client: httpx.AsyncClient, provider: JwksServer, rsa_key: SigningKey
) -> None:
    provider.fail_next(404, times=FETCH_MAX_TRIES)

    assert_problem(await me(jwks_client, rsa_key.sign(claims())), 503)
    assert provider.requests == 1


async def test_provider_down_is_503(rsa_key: SigningKey) -> None:
    app = build_app(JWT_JWKS_URL=f"http://127.0.0.1:{closed_port()}/jwks.json", JWT_AUDIENCE=AUDIENCE)
    async with serve(app) as client:
        response = await me(client, rsa_key.sign(claims()))

    body = assert_problem(response, 503)
    assert body["title"] == "Service Unavailable"
    assert body["detail"] == "The identity provider's signing keys are unavailable."
    assert "127.0.0.1" not in response.text


async def test_tokens_still_authenticate_while_the_provider_is_down_after_the_cache_expired(
    provider: JwksServer, rsa_key: SigningKey
) -> None:
    # The finding: once the cache TTL passed, a failing refresh rejected every token.
    app = build_app(JWT_JWKS_URL=provider.url, JWT_AUDIENCE=AUDIENCE, JWT_JWKS_CACHE_SECONDS=1)
    async with serve(app) as client:
        keys = keys_of(app)
        keys.backoff_factor = keys.min_refresh_interval = 0.0
        assert (await me(client, rsa_key.sign(claims()))).status_code == 200
        provider.fail_next(503, times=1000)
        keys._fetched_at -= 2  # the cache expired a second ago

        # Another token (a token verified before would be answered from the verified tokens, without a key).
        response = await me(client, rsa_key.sign(claims(jti="second")))

    assert response.status_code == 200, response.text
    assert provider.requests == 1 + FETCH_MAX_TRIES
