"""The application factory: `uvicorn --factory app.main:create_app`.

create_app(settings) configures the process (logging, Sentry, tracing) and wires the HTTP edge (middleware,
error handlers, routers); its lifespan builds every resource the API uses from the same settings and closes
them at shutdown: the engine and session factory, Redis, the token verifier (with its HTTP client for a JWKS) and
the rate limiter. Nothing is connected at import.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from app.api.health.points import router as health_router
from app.api.router import include_api
from app.clients.rate_limiter import RateLimiter
from app.core.collector import fewer_young_collections
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.core.security import TokenVerifier
from app.core.sentry import init_sentry
from app.core.telemetry import configure_telemetry, fastapi_telemetry, instrument_engine
from app.db.engine import create_engine, create_read_session_factory, create_session_factory
from app.web.errors import register_exception_handlers
from app.web.middleware.admission import AdmissionMiddleware
from app.web.middleware.body_limit import BodyLimitMiddleware
from app.web.middleware.request_context import REQUEST_ID_HEADER, RequestContextMiddleware
from app.web.middleware.security_headers import SecurityHeadersMiddleware

if TYPE_CHECKING:
    from app.clients.jwks import JwksClient

EXPOSED_HEADERS = [REQUEST_ID_HEADER, "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    state = app.state
    state.engine = create_engine(settings)
    instrument_engine(state.engine)
    state.session_factory = create_session_factory(state.engine)
    state.read_session_factory = create_read_session_factory(state.engine)
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    state.redis = Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    state.rate_limiter = RateLimiter(
        state.redis, settings.RATE_LIMIT_PER_MINUTE, fail_open=settings.RATE_LIMIT_FAIL_OPEN
    )
    try:
        async with AsyncExitStack() as stack:
            state.token_verifier = TokenVerifier(settings, await _jwks_client(settings, stack))
            # Everything built so far (modules, routes, schemas, these resources) lives as long as the process:
            # out of the collector's sight, a full collection no longer walks it (about 20 us per request under
            # load went to full collections before).
            gc.freeze()
            with fewer_young_collections(settings):
                yield
    finally:
        await state.redis.aclose()
        await state.engine.dispose()


async def _jwks_client(settings: Settings, stack: AsyncExitStack) -> "JwksClient | None":
    """The identity provider's key set when JWT_JWKS_URL is set, over an HTTP client closed with `stack`.

    httpx and the client (its TLS context loads the CA bundle) are only built in that mode: the shared-secret
    mode makes no outgoing call, and the API saves the few MiB they cost (docs/decisions.md, API memory).
    """
    if not settings.JWT_JWKS_URL:
        return None
    import httpx

    from app.clients.jwks import JwksClient

    http_client = await stack.enter_async_context(httpx.AsyncClient())
    return JwksClient(
        settings.JWT_JWKS_URL,
        http_client,
        settings.JWT_JWKS_CACHE_SECONDS,
        max_stale_seconds=settings.JWT_JWKS_MAX_STALE_SECONDS,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (default: the environment's, as uvicorn's factory call gives none)."""
    settings = settings or get_settings()
    # Process-wide and idempotent: the same settings configure them once, however many apps are built.
    configure_logging(settings)
    init_sentry(settings)
    tracer_provider = configure_telemetry(settings)
    docs = settings.DOCS_ENABLED
    app = FastAPI(
        title=settings.APP_NAME,
        version=settings.APP_VERSION,
        description="Messages fanned out to signed webhooks: the fastapi-postgres-stack example service.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        telemetry=fastapi_telemetry(tracer_provider),
    )
    app.state.settings = settings
    register_exception_handlers(app)
    # Routes are matched in the order they were included: the API's before the probes, which are called
    # every few seconds (app/api/router.py).
    include_api(app)
    app.include_router(health_router)

    # Starlette runs the last-added middleware first, so add them innermost first.
    # Outermost first they are: CORS -> security headers -> request context -> body limit -> admission.
    app.add_middleware(
        AdmissionMiddleware,
        limit=settings.MAX_CONCURRENT_REQUESTS,
        timeout_seconds=settings.REQUEST_QUEUE_TIMEOUT_SECONDS,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.MAX_BODY_BYTES)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, hsts=not settings.is_local)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ALLOW_ORIGINS,
        allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", REQUEST_ID_HEADER],
        expose_headers=EXPOSED_HEADERS,
        max_age=600,
    )
    return app
