"""Bearer JWT verification and development token minting (python-jose)."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from jose import jwt
from jose.exceptions import ExpiredSignatureError, JWKError, JWTClaimsError, JWTError
from pydantic import BaseModel, ConfigDict

from app.core.config import Settings
from app.core.exceptions import AuthenticationError
from app.core.time import utcnow
from app.core.verified_tokens import VerifiedTokens

SCOPES: tuple[str, ...] = ("webhooks:read", "webhooks:write", "messages:read", "messages:write")
# Explicit allow-lists: the token header never chooses the algorithm (no `none`, no HS/RS confusion).
SHARED_SECRET_ALGORITHMS: tuple[str, ...] = ("HS256",)
JWKS_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")


class Principal(BaseModel):
    """The authenticated client: the token's subject and the scopes it was granted."""

    model_config = ConfigDict(frozen=True)  # one instance answers every request sending the same token

    sub: str
    scopes: list[str]


class SigningKeySource(Protocol):
    async def get_key(self, kid: str) -> dict[str, Any]: ...


class TokenVerifier:
    def __init__(
        self, settings: Settings, jwks: SigningKeySource | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.jwks = jwks
        self.verified: VerifiedTokens[Principal] = VerifiedTokens(
            leeway_seconds=settings.JWT_LEEWAY_SECONDS, clock=clock
        )
        self.algorithms = list(JWKS_ALGORITHMS if jwks else SHARED_SECRET_ALGORITHMS)
        self.required_claims = ["exp", "sub"]
        if settings.JWT_ISSUER is not None:
            self.required_claims.append("iss")
        if settings.JWT_AUDIENCE is not None:
            self.required_claims.append("aud")

    async def verify(self, token: str) -> Principal:
        """The client `token` authenticates: its signature, algorithm, expiry and required claims checked
        in full, or, for the very same token verified lately and not expired since, its expiry (verified_tokens.py).
        """
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        try:
            header = jwt.get_unverified_header(token)
        except JWTError:
            raise AuthenticationError("The bearer token is malformed.") from None
        if header.get("alg") not in self.algorithms:
            raise AuthenticationError(f"Token algorithm must be one of {', '.join(self.algorithms)}.")
        claims = self._decode(token, await self._key(header))
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthenticationError("The token has no subject (sub).")
        principal = Principal(sub=sub, scopes=_scopes(claims.get("scope")))
        expires_at = claims["exp"]  # required (_decode); python-jose also accepts a numeric string: not remembered
        if isinstance(expires_at, int | float):
            self.verified.add(token, principal, float(expires_at))
        return principal

    async def _key(self, header: dict[str, Any]) -> str | dict[str, Any]:
        if self.jwks is None:
            return self.settings.JWT_SECRET.get_secret_value()
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthenticationError("The token header has no key id (kid).")
        key = await self.jwks.get_key(kid)
        # A key is for one algorithm only (RFC 8725 section 3.1): the token header cannot pick another.
        if key.get("alg", header["alg"]) != header["alg"]:
            raise AuthenticationError("The token's algorithm does not match its signing key.")
        return key

    def _decode(self, token: str, key: str | dict[str, Any]) -> dict[str, Any]:
        settings = self.settings
        # Required claims are checked below, not with python-jose's `require_*` options: jose reports
        # a missing claim as a bare JWTError, indistinguishable from a bad signature.
        options = {"verify_aud": settings.JWT_AUDIENCE is not None, "leeway": settings.JWT_LEEWAY_SECONDS}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=settings.JWT_AUDIENCE,
                issuer=settings.JWT_ISSUER,
                options=options,
            )
        except ExpiredSignatureError:
            raise AuthenticationError("The token has expired.") from None
        except JWTClaimsError as exc:
            raise AuthenticationError(f"The token's claims are not accepted: {str(exc).rstrip('.')}.") from None
        except (JWTError, JWKError):  # JWKError: a key of another type than the algorithm (e.g. RSA for ES256)
            raise AuthenticationError("The token signature is not valid.") from None
        missing = [name for name in self.required_claims if name not in claims]
        if missing:
            raise AuthenticationError(f"The token lacks the required claim(s): {', '.join(missing)}.")
        return claims


def _scopes(claim: object) -> list[str]:
    if isinstance(claim, str):
        return claim.split()
    if isinstance(claim, list):
        return [scope for scope in claim if isinstance(scope, str)]
    return []


def create_access_token(
    settings: Settings, sub: str, scopes: tuple[str, ...] = SCOPES, expires_in: timedelta = timedelta(hours=1)
) -> str:
    """Sign an HS256 token with JWT_SECRET: for local development and tests only."""
    now = utcnow()
    claims: dict[str, Any] = {"sub": sub, "scope": " ".join(scopes), "iat": now, "exp": now + expires_in}
    if settings.JWT_ISSUER:
        claims["iss"] = settings.JWT_ISSUER
    if settings.JWT_AUDIENCE:
        claims["aud"] = settings.JWT_AUDIENCE
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm="HS256")
