"""The async engine and the one session factory, built from Settings by whoever runs the process.

The API builds them in its lifespan (app/main.py), the worker in each process's start-up
(app/worker/runtime.py); nothing here connects or is built at import.
"""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from app.core.config import Settings

SessionFactory = async_sessionmaker[AsyncSession]


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


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    # expire_on_commit=False: services return models after commit without lazy reloads.
    return async_sessionmaker(engine, expire_on_commit=False)
