"""Session setup (a test database of our own, one rolled-back transaction per test) and the fixtures that
tests in several folders share: the local HTTP receiver, in-memory spans, a JWKS provider and its keys.
"""

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

from collections.abc import AsyncIterator, Callable, Iterator  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402

from app.core.config import get_settings  # noqa: E402
from app.core.security import SCOPES, create_access_token  # noqa: E402
from app.core.telemetry import configure_telemetry, disable_telemetry  # noqa: E402
from app.db.database import engine, get_db  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.jwks import service as jwks_service  # noqa: E402
from app.services.webhook_sender.service import WebhookSender  # noqa: E402
from tests.app_helpers import make_settings  # noqa: E402
from tests.database import clone, recreate_migrated  # noqa: E402
from tests.jwks_provider import JwksServer, SigningKey, ec_signing_key, rsa_signing_key  # noqa: E402
from tests.receiver import Receiver, running_receiver  # noqa: E402


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


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """An outgoing HTTP client for the local test servers."""
    # trust_env=False: a proxy configured in the environment must not intercept 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def sender(http_client: httpx.AsyncClient) -> WebhookSender:
    """The webhook sender, allowed to call the local receiver."""
    return WebhookSender(http_client, allow_private=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real local HTTP server for this test: scripted answers per URL, every request recorded."""
    with running_receiver() as running:
        yield running


# One per process: a provider's processors cannot be removed, so tests share one and clear it.
_SPAN_EXPORTER = InMemorySpanExporter()
_SPAN_PROCESSOR = SimpleSpanProcessor(_SPAN_EXPORTER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for this test (apps built after this see it), its finished spans recorded in memory."""
    _SPAN_EXPORTER.clear()
    configure_telemetry(make_settings(), span_processor=_SPAN_PROCESSOR)
    yield _SPAN_EXPORTER
    disable_telemetry()
    _SPAN_EXPORTER.clear()


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return rsa_signing_key("rsa-1")


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return ec_signing_key("ec-1")


@pytest.fixture
def provider(rsa_key: SigningKey, ec_key: SigningKey) -> Iterator[JwksServer]:
    """A real identity provider's JWKS endpoint serving `rsa_key` and `ec_key`."""
    with JwksServer(keys=[rsa_key, ec_key]).running() as server:
        yield server


@pytest.fixture
def no_backoff_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """JWKS fetch retries without sleeping in between."""
    monkeypatch.setattr(jwks_service, "JWKS_FETCH_BACKOFF_FACTOR", 0.0)
