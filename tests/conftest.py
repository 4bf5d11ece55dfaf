"""Fixtures every folder shares: the suite's settings and database (one rolled-back transaction per test),
the app and a client for it, tokens, the local HTTP receiver, a silent server, a proxy in front of
PostgreSQL, captured log lines, in-memory spans and a JWKS provider."""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.deps import get_session
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.target import TargetGuard
from app.core.config import Settings
from app.core.logging import configure_logging
from app.core.telemetry import configure_telemetry, disable_telemetry
from app.db.engine import create_engine
from app.main import create_app
from tests.support.database import clone, recreate_migrated
from tests.support.jwks_provider import JwksServer, SigningKey, ec_signing_key, rsa_signing_key
from tests.support.receiver import Receiver, running_receiver
from tests.support.sealing import KEYRING
from tests.support.settings import TEMPLATE_DB, test_settings
from tests.support.silent import silent_server
from tests.support.sql import recorded_statements
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.support.tokens import HeadersFactory, bearer


def pytest_configure(config: pytest.Config) -> None:
    """The controller builds the migrated template; each xdist worker clones it into a database of its own."""
    if hasattr(config, "workerinput"):
        clone(TEMPLATE_DB, test_settings())
    else:
        recreate_migrated(test_settings())


@pytest.fixture
def warnings(settings: Settings) -> Iterator[list[str]]:
    """The messages logged at WARNING or above while the test runs."""
    # The process's first logging set-up removes every handler, this one too: have it done already.
    configure_logging(settings)
    messages: list[str] = []
    handler_id = logger.add(lambda m: messages.append(m.record["message"]), level="WARNING", format="{message}")
    yield messages
    logger.remove(handler_id)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return test_settings()


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The suite's engine, for the sessions tests work in (apps build their own in their lifespan)."""
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is rolled back, so services may commit."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL the suite's engine (and so `db_session`) sends while the test runs."""
    with recorded_statements(engine) as sent:
        yield sent


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, its requests working in `db_session` (rolled back after the test)."""

    async def session_of_the_test() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[get_session] = session_of_the_test
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        yield http_client
    app.dependency_overrides.clear()  # and whatever the test overrode


@pytest.fixture
def headers_for(settings: Settings) -> HeadersFactory:
    """Authorization headers for client `sub` (default "client-a"), with every scope unless `scopes` is given."""

    def factory(sub: str = "client-a", scopes: tuple[str, ...] | None = None) -> dict[str, str]:
        return bearer(settings, sub) if scopes is None else bearer(settings, sub, scopes)

    return factory


@pytest.fixture
def auth_headers(headers_for: HeadersFactory) -> dict[str, str]:
    """Authorization headers for "client-a" with every scope."""
    return headers_for()


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """An outgoing HTTP client for the local test servers."""
    # trust_env=False: a proxy configured in the environment must not intercept 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
async def webhook_client() -> AsyncIterator[WebhookClient]:
    """The webhook client, allowed to call the local receiver, with the suite's key ring."""
    client = WebhookClient(TargetGuard(allow_private=True), KEYRING)
    yield client
    await client.aclose()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections and never answers (a hung Redis or PostgreSQL)."""
    with silent_server() as port:
        yield port


@pytest.fixture
async def database_proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the suite's PostgreSQL: point an app at `.port`, then cut() or freeze() it."""
    async with tcp_proxy(settings.DB_HOST, settings.DB_PORT) as proxy:
        yield proxy


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, str]]]:
    """(level, message) of every line logged while the test runs, DEBUG and up."""
    configure_logging(test_settings())  # first, as an app would: its first call removes every other sink
    lines: list[tuple[str, str]] = []
    handler_id = logger.add(lambda m: lines.append((m.record["level"].name, m.record["message"])), level="DEBUG")
    yield lines
    logger.remove(handler_id)


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
    configure_telemetry(test_settings(), span_processor=_SPAN_PROCESSOR)
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
