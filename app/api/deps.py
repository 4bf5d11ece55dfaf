"""The API's dependency providers: what create_app's lifespan built (app.state), typed, as `Annotated` aliases;
the authenticated client, scopes and the rate limit."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.clients.rate_limiter import RateLimiter
from app.clients.webhooks.target import TargetGuard
from app.core.config import Settings
from app.core.encryption import KeyRing
from app.core.exceptions import AuthenticationError, PermissionDeniedError, RateLimitedError
from app.core.security import Principal, TokenVerifier
from app.db.engine import SessionFactory


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, closed (and its connection returned to the pool) when the response is sent."""
    session_factory: SessionFactory = request.app.state.session_factory
    async with session_factory() as session:
        yield session


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def get_token_verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.token_verifier
    return verifier


def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


def get_target_guard(request: Request) -> TargetGuard:
    guard: TargetGuard = request.app.state.target_guard
    return guard


def get_keyring(request: Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
RedisDep = Annotated[Redis, Depends(get_redis)]
TargetGuardDep = Annotated[TargetGuard, Depends(get_target_guard)]
KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]

bearer_scheme = HTTPBearer(auto_error=False, description="A JWT; `make token sub=NAME` mints one locally.")


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    verifier: Annotated[TokenVerifier, Depends(get_token_verifier)],
) -> Principal:
    if credentials is None:
        raise AuthenticationError("Send an 'Authorization: Bearer <token>' header.", token_sent=False)
    principal = await verifier.verify(credentials.credentials)
    # For the access log, which runs outside the dependency system.
    request.state.client_sub = principal.sub
    return principal


CurrentClient = Annotated[Principal, Depends(authenticate)]


async def rate_limit(
    request: Request, client: CurrentClient, limiter: Annotated[RateLimiter, Depends(get_rate_limiter)]
) -> None:
    """Count the request against the client's per-minute budget (after authentication: limits are per `sub`)."""
    status = await limiter.hit(client.sub)
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


def require_scopes(*scopes: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A route dependency: the client's token must carry every one of `scopes`."""

    async def check(client: CurrentClient) -> Principal:
        missing = [scope for scope in scopes if scope not in client.scopes]
        if missing:
            challenge = f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}"'  # RFC 6750 section 3.1
            raise PermissionDeniedError(
                f"The token lacks the scope(s): {', '.join(missing)}.", headers={"WWW-Authenticate": challenge}
            )
        return client

    return check
