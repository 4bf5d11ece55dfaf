"""The async engine, the one session factory, and the `get_db` dependency (API and worker)."""

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.core.config import Settings, get_settings


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_pre_ping=True,
        pool_size=settings.DB_POOL_SIZE,
        max_overflow=settings.DB_MAX_OVERFLOW,
        pool_timeout=settings.DB_POOL_TIMEOUT_SECONDS,
        # Statement parameters are client data (payloads, secrets): keep them out of error messages,
        # logs and Sentry, except when debugging locally on purpose.
        hide_parameters=settings.LOG_LEVEL.upper() != "DEBUG",
    )


engine = create_engine(get_settings())
# expire_on_commit=False: services return models after commit without lazy reloads.
SessionFactory = async_sessionmaker(engine, expire_on_commit=False)


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionFactory() as session:
        yield session
