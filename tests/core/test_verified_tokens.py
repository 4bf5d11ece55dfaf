"""A token verified once answers from the process's cache while unexpired; anything else is verified in full."""

import asyncio
import time
from typing import Any

import pytest
from jose import jwt

from app.core.config import Settings
from app.core.exceptions import AuthenticationError
from app.core.security import Principal, TokenVerifier
from app.core.verified_tokens import VerifiedTokens
from tests.core.test_security import hs256


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingVerifier(TokenVerifier):
    """The real verifier, counting how often it checks a signature and claims in full."""

    full_checks = 0

    def _decode(self, token: str, key: str | dict[str, Any]) -> dict[str, Any]:
        self.full_checks += 1
        return super()._decode(token, key)


def test_entries_expire_with_the_token_plus_leeway() -> None:
    clock = Clock(1000.0)
    tokens: VerifiedTokens[str] = VerifiedTokens(leeway_seconds=5, clock=clock)
    tokens.add("t", "client", expires_at=1010.0)

    clock.now = 1014.9
    assert tokens.get("t") == "client"
    clock.now = 1015.0
    assert tokens.get("t") is None
    assert len(tokens) == 0


def test_entries_live_at_most_max_age_whatever_the_expiry() -> None:
    clock = Clock(1000.0)
    tokens: VerifiedTokens[str] = VerifiedTokens(leeway_seconds=0, max_age_seconds=60, clock=clock)
    tokens.add("t", "client", expires_at=1_000_000.0)

    clock.now = 1059.0
    assert tokens.get("t") == "client"
    clock.now = 1060.0
    assert tokens.get("t") is None


def test_an_expired_token_is_not_remembered() -> None:
    tokens: VerifiedTokens[str] = VerifiedTokens(leeway_seconds=0, clock=Clock(1000.0))
    tokens.add("t", "client", expires_at=999.0)
    assert len(tokens) == 0


def test_the_oldest_entries_make_room() -> None:
    tokens: VerifiedTokens[int] = VerifiedTokens(leeway_seconds=0, max_entries=3, clock=Clock(0.0))
    for number in range(5):
        tokens.add(f"t{number}", number, expires_at=100.0)

    assert len(tokens) == 3
    assert [tokens.get(f"t{number}") for number in range(5)] == [None, None, 2, 3, 4]


async def test_the_same_token_is_verified_in_full_once(settings: Settings) -> None:
    verifier = CountingVerifier(settings)
    token = hs256(settings, scope="reports:read reports:write")

    first, second = await verifier.verify(token), await verifier.verify(token)

    assert first == second == Principal(sub="client-a", scopes=["reports:read", "reports:write"])
    assert verifier.full_checks == 1


async def test_a_token_past_its_expiry_is_verified_in_full_again(settings: Settings) -> None:
    clock = Clock(time.time())
    verifier = CountingVerifier(settings, clock=clock)
    token = hs256(settings, exp=int(clock.now) + 100)
    await verifier.verify(token)

    clock.now += 100 + settings.JWT_LEEWAY_SECONDS + 1  # expired by the cache's clock (not yet by jose's)
    await verifier.verify(token)

    assert verifier.full_checks == 2


async def test_a_cached_token_that_expires_is_refused(settings: Settings) -> None:
    verifier = TokenVerifier(settings.model_copy(update={"JWT_LEEWAY_SECONDS": 0}))
    expires_at = int(time.time()) + 1
    token = hs256(settings, exp=expires_at)
    await verifier.verify(token)

    await asyncio.sleep(expires_at + 1.05 - time.time())  # jose compares whole seconds: now > exp, by its clock
    with pytest.raises(AuthenticationError, match="expired"):
        await verifier.verify(token)


async def test_another_signature_on_the_same_claims_is_not_served_from_the_cache(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    token = hs256(settings)
    await verifier.verify(token)
    header, payload, _ = token.split(".")
    forged = jwt.encode(jwt.get_unverified_claims(token), "another secret of enough length 0123456789")

    with pytest.raises(AuthenticationError, match="signature"):
        await verifier.verify(f"{header}.{payload}.{forged.split('.')[2]}")


async def test_a_refused_token_is_not_remembered(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    with pytest.raises(AuthenticationError):
        await verifier.verify(hs256(settings, sub=None))

    assert len(verifier.verified) == 0
