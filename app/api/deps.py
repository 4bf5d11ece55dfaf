"""The API's dependency providers: what create_app's lifespan built (app.state), typed, as `Annotated` aliases;
the authenticated client (its request counted by the rate limit) and scopes.

Providers that only read app.state are `async def`: FastAPI runs a plain `def` dependency in a worker thread,
a hop that costs more than the attribute read it wraps.
"""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.clients.rate_limiter import RateLimiter
from app.clients.webhooks.target import TargetGuard
from app.core.config import Settings
from app.core.encryption import KeyRing
from app.core.exceptions import AppError, AuthenticationError, PermissionDeniedError, RateLimitedError
from app.core.security import Principal, TokenVerifier

SAFE_METHODS = frozenset({"GET", "HEAD"})


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (and its connection returned to the pool) before the response is sent.

    GET and HEAD are safe methods, which only read: their session runs each statement in autocommit
    (create_read_session_factory), without a transaction's BEGIN and ROLLBACK around the read.
    """
    state = request.app.state
    open_session: Callable[[], AbstractAsyncContextManager[AsyncSession]] = (
        state.read_session_factory if request.method in SAFE_METHODS else state.session_factory
    )
    async with open_session() as session:
        yield session


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def get_token_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


async def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def get_target_guard(request: Request) -> TargetGuard:
    guard: TargetGuard = request.app.state.target_guard
    return guard


async def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
# scope="function": the session closes (its connection back in the pool) once the endpoint has returned and its
# response is built, not after it has been sent; services return response models, never rows still to load.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
RedisDep = Annotated[Redis, Depends(get_redis)]
TargetGuardDep = Annotated[TargetGuard, Depends(get_target_guard)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]

BEARER_DESCRIPTION = "A JWT; `make token sub=NAME` mints one locally."


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, None for any other or no header (FastAPI's
    HTTPBearer reads the header the same way)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    if not token or scheme.lower() != "bearer":
        return None
    return token


class Authenticate(SecurityBase):
    """The `authenticate` dependency: the client of the request's bearer token, its request counted against
    its per-minute budget (limits are per `sub`); with `scopes`, also the check that the token carries them
    (`require_scopes`).

    One dependency for the header, the token, the count and the scopes, declared in the OpenAPI document as the
    HTTP bearer scheme (a security scheme FastAPI finds by this class's base). FastAPI's bookkeeping per
    dependency costs more than what most of them do (docs/decisions.md): the header was a dependency of its own
    before (HTTPBearer), the scope check another that depended on `authenticate`; the verifier and the limiter
    are read from app.state by plain calls. Whichever instance runs first on a request authenticates it and
    keeps the client in request.state; the others reuse it, so a request is verified and counted once whatever
    the order FastAPI solves them in.
    """

    def __init__(self, *scopes: str) -> None:
        self.model = HTTPBearerModel(description=BEARER_DESCRIPTION)
        self.scheme_name = "HTTPBearer"
        self.scopes = scopes

    async def __call__(self, request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            principal = await self._authenticate(request)
        missing = [scope for scope in self.scopes if scope not in principal.scopes]
        if missing:
            challenge = f'Bearer error="insufficient_scope", scope="{" ".join(self.scopes)}"'  # RFC 6750 section 3.1
            raise PermissionDeniedError(
                f"The token lacks the scope(s): {', '.join(missing)}.", headers={"WWW-Authenticate": challenge}
            )
        return principal

    async def _authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise AuthenticationError("Send an 'Authorization: Bearer <token>' header.", token_sent=False)
        principal = await (await get_token_verifier(request)).verify(token)
        request.state.principal = principal
        # For the access log, which runs outside the dependency system.
        request.state.client_sub = principal.sub
        await count_request(request, principal.sub, await get_rate_limiter(request))
        return principal


authenticate = Authenticate()

CurrentClient = Annotated[Principal, Depends(authenticate)]


async def count_refused_request(request: Request) -> None:
    """Count a request refused before `authenticate` (which counts it) could run (FastAPI reads and parses the
    body first: malformed JSON, a body that is not UTF-8, one over the size limit), if its token is valid.

    Such a request is still answered for its body (422, 413) whatever its token says: an invalid or missing
    token only means it is not counted. Past the limit, the answer is 429 like for any other request.
    """
    if getattr(request.state, "rate_limit_counted", False):
        return
    token = bearer_token(request)
    if token is None:
        return
    try:
        principal = await (await get_token_verifier(request)).verify(token)
    except AppError:  # invalid, expired, or the identity provider unavailable: not counted
        return
    request.state.client_sub = principal.sub
    await count_request(request, principal.sub, await get_rate_limiter(request))


async def count_request(request: Request, sub: str, limiter: RateLimiter) -> None:
    request.state.rate_limit_counted = True
    status = await limiter.hit(sub)
    if status is None:  # Redis is unavailable and the limiter fails open
        return
    headers = status.headers()
    # The request-context middleware adds these to whatever response goes out, errors raised later included.
    request.state.rate_limit_headers = headers
    if not status.allowed:
        raise RateLimitedError(
            f"Rate limit of {status.limit} requests per minute exceeded; retry in {status.reset_seconds} s.",
            headers={**headers, "Retry-After": str(status.reset_seconds)},
        )


def require_scopes(*scopes: str) -> Authenticate:
    """A route dependency: the authenticated client, whose token must carry every one of `scopes`."""
    return Authenticate(*scopes)
