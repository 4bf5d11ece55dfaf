"""Tracing: off unless configured; when on, one trace per request with its SQL, Redis and task publish inside.

The worker's side (the task continues the trace, its spans are exported over OTLP) is tested with a real
worker process in tests/celery/test_context_propagation.py.
"""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from loguru import logger
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.deps import get_session
from app.core.config import Settings
from app.core.telemetry import configure_telemetry, disable_telemetry, fastapi_telemetry, instrument_engine
from app.web.middleware.request_context import REQUEST_ID_HEADER
from app.worker.tasks import FAN_OUT_TASK
from tests.support.apps import build_app, serve
from tests.support.settings import test_settings


@pytest.fixture
async def traced_client(
    spans: InMemorySpanExporter, engine: AsyncEngine, db_session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app()

    async def session_of_the_test() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[get_session] = session_of_the_test
    async with serve(app) as client:
        # The requests run in db_session, on the suite's engine: trace that one, as the lifespan traces its own.
        instrument_engine(engine)
        yield client


def _by_id(spans: tuple[ReadableSpan, ...]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans}


def _is_under(span: ReadableSpan, ancestor: ReadableSpan, spans: dict[int, ReadableSpan]) -> bool:
    parent = span.parent
    while parent is not None:
        if parent.span_id == ancestor.context.span_id:
            return True
        above = spans.get(parent.span_id)
        parent = above.parent if above is not None else None
    return False


def test_tracing_is_off_without_an_endpoint() -> None:
    assert configure_telemetry(test_settings()) is None
    assert fastapi_telemetry(None)["tracing"] is False


def test_the_provider_describes_the_service(spans: InMemorySpanExporter) -> None:
    provider = configure_telemetry(test_settings())

    assert isinstance(provider, TracerProvider)
    assert trace.get_tracer_provider() is provider
    attributes = provider.resource.attributes
    settings = test_settings()
    assert attributes["service.name"] == settings.APP_NAME
    assert attributes["service.version"] == settings.APP_VERSION
    assert attributes["deployment.environment"] == settings.APP_ENVIRONMENT == "test"


async def test_a_request_is_one_trace_with_its_sql_under_the_request_span(
    traced_client: httpx.AsyncClient, spans: InMemorySpanExporter, auth_headers: dict[str, str]
) -> None:
    response = await traced_client.get("/api/v1/webhooks", headers=auth_headers)
    assert response.status_code == 200, response.text

    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind.name == "SERVER")
    assert request.name == "GET /api/v1/webhooks"
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/api/v1/webhooks"
    by_id = _by_id(finished)
    in_trace = [s for s in finished if s.context.trace_id == request.context.trace_id and s.attributes]
    sql = [s for s in in_trace if s.attributes and s.attributes.get("db.system") == "postgresql"]
    assert any("FROM webhooks" in str(s.attributes and s.attributes.get("db.statement")) for s in sql)
    assert all(_is_under(s, request, by_id) for s in sql)
    rate_limit = [s for s in in_trace if s.attributes and s.attributes.get("db.system") == "redis"]
    assert rate_limit
    assert all(_is_under(s, request, by_id) for s in rate_limit)


async def test_log_lines_of_a_traced_request_carry_its_trace_id(
    traced_client: httpx.AsyncClient, spans: InMemorySpanExporter, auth_headers: dict[str, str]
) -> None:
    lines: list[dict[str, Any]] = []
    handler_id = logger.add(lambda m: lines.append(m.record["extra"]), format="{message}")
    try:
        response = await traced_client.get("/api/v1/me", headers={**auth_headers, REQUEST_ID_HEADER: "traced-1"})
    finally:
        logger.remove(handler_id)
    assert response.status_code == 200

    request = next(s for s in spans.get_finished_spans() if s.kind.name == "SERVER")
    access = next(extra for extra in lines if extra.get("request_id") == "traced-1")
    assert access["trace_id"] == format(request.context.trace_id, "032x")


async def test_health_probes_are_not_traced(traced_client: httpx.AsyncClient, spans: InMemorySpanExporter) -> None:
    response = await traced_client.get("/health/live")
    assert response.status_code == 200

    assert not [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]


async def test_the_trace_context_goes_into_the_task_message(
    spans: InMemorySpanExporter, db_session: AsyncSession, settings: Settings, auth_headers: dict[str, str]
) -> None:
    """Posting a message publishes its fan-out task through the real queue: read it back from Redis."""
    app = build_app()

    async def session_of_the_test() -> AsyncIterator[AsyncSession]:
        yield db_session

    app.dependency_overrides[get_session] = session_of_the_test
    async with serve(app) as client:
        response = await client.post(
            "/api/v1/messages", json={"event": "order.created", "payload": {}}, headers=auth_headers
        )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]

    with Redis.from_url(settings.redis_url) as redis:
        raw = next(m for m in redis.lrange("celery", 0, -1) if message_id in json.loads(m)["headers"]["argsrepr"])
        redis.lrem("celery", 1, raw)
    headers = json.loads(raw)["headers"]

    finished = spans.get_finished_spans()
    request = next(s for s in finished if s.kind.name == "SERVER")
    publish = next(s for s in finished if s.name == f"publish/{FAN_OUT_TASK}")
    assert publish.end_time is not None
    assert _is_under(publish, request, _by_id(finished))
    # W3C traceparent: version-trace_id-parent_id-flags; the worker's task span becomes a child of `publish`.
    version, trace_id, parent_id, _ = headers["traceparent"].split("-")
    assert version == "00"
    assert trace_id == format(request.context.trace_id, "032x")
    assert parent_id == format(publish.context.span_id, "016x")
    assert headers["request_id"] == response.headers[REQUEST_ID_HEADER]


def test_disabled_telemetry_turns_tracing_off_again(spans: InMemorySpanExporter) -> None:
    assert configure_telemetry(test_settings()) is not None

    disable_telemetry()

    assert configure_telemetry(test_settings()) is None
