"""The application factory: middleware, exception handlers, routers and lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware

from app.api.api import api_router
from app.api.health.points import router as health_router
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.core.security import TokenVerifier
from app.core.sentry import init_sentry
from app.core.telemetry import configure_telemetry, fastapi_telemetry
from app.handler.exception_handlers import register_exception_handlers
from app.middleware.body_limit import BodyLimitMiddleware
from app.middleware.request_context import REQUEST_ID_HEADER, RequestContextMiddleware
from app.middleware.security_headers import SecurityHeadersMiddleware
from app.services.jwks.service import JwksClient
from app.services.rate_limit.service import RateLimiter

EXPOSED_HEADERS = [REQUEST_ID_HEADER, "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    timeout = settings.HEALTH_CHECK_TIMEOUT_SECONDS
    app.state.redis = Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    app.state.rate_limiter = RateLimiter(
        app.state.redis, settings.RATE_LIMIT_PER_MINUTE, fail_open=settings.RATE_LIMIT_FAIL_OPEN
    )
    async with httpx.AsyncClient() as http_client:
        jwks = None
        if settings.JWT_JWKS_URL:
            jwks = JwksClient(settings.JWT_JWKS_URL, http_client, settings.JWT_JWKS_CACHE_SECONDS)
        app.state.token_verifier = TokenVerifier(settings, jwks)
        try:
            yield
        finally:
            await app.state.redis.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API. `settings` shapes the HTTP edge (auth, CORS, limits, docs, Redis client); the
    database engine and the Celery app are process-wide and always use the environment's settings."""
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
    app.include_router(health_router)
    app.include_router(api_router)

    # Starlette runs the last-added middleware first, so add them innermost first.
    # Outermost first they are: CORS -> security headers -> request context -> body limit.
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


app = create_app()
