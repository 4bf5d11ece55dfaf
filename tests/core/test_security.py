"""Token verification, through real requests to /api/v1/me: every way a token can be wrong is a 401."""

import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jose import jwt

from app.core.config import Settings
from app.core.security import SCOPES, create_access_token
from app.core.time import utcnow
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem

INVALID_TOKEN = 'Bearer error="invalid_token"'
AUDIENCE = "https://api.example.com"
ISSUER = "https://issuer.example.com/"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(utcnow().timestamp())
    values: dict[str, Any] = {"sub": "client-a", "scope": "messages:read", "iat": now, "exp": now + 300}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def hs256(settings: Settings, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), settings.JWT_SECRET.get_secret_value(), algorithm="HS256")


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def assert_rejected(response: httpx.Response, detail: str) -> None:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_TOKEN
    assert detail in body["detail"]


async def test_a_valid_token_authenticates(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await me(client, hs256(settings, scope="webhooks:read messages:write"))

    assert response.status_code == 200
    assert response.json() == {"sub": "client-a", "scopes": ["webhooks:read", "messages:write"]}


async def test_scopes_may_be_a_list(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await me(client, hs256(settings, scope=["webhooks:read", 7, "messages:read"]))

    assert response.status_code == 200
    assert response.json()["scopes"] == ["webhooks:read", "messages:read"]


async def test_a_token_without_scopes_has_none(client: httpx.AsyncClient, settings: Settings) -> None:
    response = await me(client, hs256(settings, scope=None))

    assert response.status_code == 200
    assert response.json()["scopes"] == []


async def test_wrong_signature(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), "another-secret-of-the-same-length-0123456789", algorithm="HS256")

    assert_rejected(await me(client, token), "signature is not valid")


async def test_tampered_payload(client: httpx.AsyncClient, settings: Settings) -> None:
    header, _, signature = hs256(settings).split(".")
    forged = f"{header}.{b64url(claims(sub='client-b'))}.{signature}"

    assert_rejected(await me(client, forged), "signature is not valid")


async def test_alg_none_is_refused(client: httpx.AsyncClient) -> None:
    unsigned = f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}."

    assert_rejected(await me(client, unsigned), "algorithm must be one of HS256")


async def test_hs512_is_refused_even_with_the_right_secret(client: httpx.AsyncClient, settings: Settings) -> None:
    token = jwt.encode(claims(), settings.JWT_SECRET.get_secret_value(), algorithm="HS512")

    assert_rejected(await me(client, token), "algorithm must be one of HS256")


async def test_rs256_is_refused_in_shared_secret_mode(client: httpx.AsyncClient) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    token = jwt.encode(claims(), pem.decode(), algorithm="RS256")

    assert_rejected(await me(client, token), "algorithm must be one of HS256")


async def test_expired_token(client: httpx.AsyncClient, settings: Settings) -> None:
    past = int(utcnow().timestamp()) - settings.JWT_LEEWAY_SECONDS - 60

    assert_rejected(await me(client, hs256(settings, exp=past)), "expired")


async def test_expiry_allows_the_configured_leeway(client: httpx.AsyncClient, settings: Settings) -> None:
    just_expired = int(utcnow().timestamp()) - settings.JWT_LEEWAY_SECONDS // 2

    assert (await me(client, hs256(settings, exp=just_expired))).status_code == 200


async def test_missing_exp(client: httpx.AsyncClient, settings: Settings) -> None:
    assert_rejected(await me(client, hs256(settings, exp=None)), "lacks the required claim(s): exp")


async def test_missing_sub(client: httpx.AsyncClient, settings: Settings) -> None:
    assert_rejected(await me(client, hs256(settings, sub=None)), "lacks the required claim(s): sub")


@pytest.mark.parametrize("sub", ["", 42])
async def test_unusable_sub(client: httpx.AsyncClient, settings: Settings, sub: object) -> None:
    response = await me(client, hs256(settings, sub=sub))

    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == INVALID_TOKEN


@pytest.fixture
async def strict_client() -> AsyncIterator[httpx.AsyncClient]:
    """An app that also checks the audience and the issuer."""
    async with serve(build_app(JWT_AUDIENCE=AUDIENCE, JWT_ISSUER=ISSUER)) as client:
        yield client


async def test_audience_and_issuer_accepted_when_right(strict_client: httpx.AsyncClient, settings: Settings) -> None:
    response = await me(strict_client, hs256(settings, aud=AUDIENCE, iss=ISSUER))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"aud": "https://other.example.com", "iss": ISSUER}, "Invalid audience"),
        ({"aud": ["https://other.example.com"], "iss": ISSUER}, "Invalid audience"),
        ({"iss": ISSUER}, "lacks the required claim(s): aud"),
        ({"aud": AUDIENCE, "iss": "https://evil.example.com/"}, "Invalid issuer"),
        ({"aud": AUDIENCE}, "Invalid issuer"),
    ],
    ids=["wrong-audience", "wrong-audience-list", "no-audience", "wrong-issuer", "no-issuer"],
)
async def test_audience_and_issuer_are_checked_when_configured(
    strict_client: httpx.AsyncClient, settings: Settings, overrides: dict[str, Any], detail: str
) -> None:
    assert_rejected(await me(strict_client, hs256(settings, **overrides)), detail)


async def test_development_tokens_carry_the_configured_audience_and_issuer(strict_client: httpx.AsyncClient) -> None:
    strict = Settings(_env_file=None, JWT_AUDIENCE=AUDIENCE, JWT_ISSUER=ISSUER)

    response = await me(strict_client, create_access_token(strict, "client-z"))

    assert response.status_code == 200
    assert response.json()["sub"] == "client-z"


def test_create_access_token_claims(settings: Settings) -> None:
    token = create_access_token(settings, "client-q", expires_in=timedelta(minutes=5))

    decoded = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=["HS256"])
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert decoded["sub"] == "client-q"
    assert decoded["scope"].split() == list(SCOPES)
    assert decoded["exp"] - decoded["iat"] == 300
    assert "aud" not in decoded
    assert "iss" not in decoded
