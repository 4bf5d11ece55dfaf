"""Session setup: a test database of our own, one rolled-back transaction per test."""

import os

from app.core.config import Settings

# Before anything imports app.db.database: the engine must point at the test database.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# Workers inherit the controller's environment (DB_NAME included), so the name is passed down.
TEMPLATE_DB = os.environ.setdefault("TEST_TEMPLATE_DB", f"{Settings().DB_NAME}_test")
os.environ["APP_ENVIRONMENT"] = "test"
os.environ["DB_NAME"] = f"{TEMPLATE_DB}_{_WORKER}" if _WORKER else TEMPLATE_DB
# A Redis database per xdist worker (15, 14, ...), apart from the one a local dev worker consumes.
os.environ["REDIS_DB"] = str(15 - int(_WORKER.removeprefix("gw"))) if _WORKER else "15"
# The suite sends far more than a minute's budget as "client-a"; tests/api/test_rate_limit.py sets its own.
os.environ["RATE_LIMIT_PER_MINUTE"] = "1000000"

from collections.abc import AsyncIterator, Callable  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from app.core.config import get_settings  # noqa: E402
from app.core.security import SCOPES, create_access_token  # noqa: E402
from app.db.database import engine, get_db  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.database import clone, recreate_migrated  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    settings = get_settings()
    if hasattr(config, "workerinput"):
        clone(TEMPLATE_DB, settings)
    else:
        recreate_migrated(settings)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture
async def db_session() -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back, so services may commit."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture(scope="session")
async def app() -> AsyncIterator[FastAPI]:
    application = create_app()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    async def override_get_db() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[get_db] = override_get_db
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        yield http_client
    app.dependency_overrides.clear()


TokenFactory = Callable[..., str]


@pytest.fixture
def make_token(settings: Settings) -> TokenFactory:
    def factory(sub: str = "client-a", scopes: tuple[str, ...] = SCOPES) -> str:
        return create_access_token(settings, sub, scopes)

    return factory


@pytest.fixture
def auth_headers(make_token: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token()}"}
