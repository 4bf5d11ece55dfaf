"""OpenTelemetry tracing: one TracerProvider per process, OTLP export when configured, and instrumentation.

Tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT is set (or a caller, such as a test, passes a span processor):
FastAPI, SQLAlchemy (the engine handed to `instrument_engine`), Redis, httpx (the API's outgoing calls),
aiohttp (the worker's) and Celery are traced, and the trace context travels in Celery's task headers, so one
trace holds an API request, its SQL, the tasks it enqueued and their webhook calls.
OpenTelemetry allows the global provider to be set once per process, so it is created once and reused.
The SDK, the exporter and the instrumentations are imported only when tracing is turned on: a process
without an endpoint does not load them (some 6 MiB, most of it the Celery instrumentation).

FastAPI traces itself (its native `telemetry` support: a server span per request, and spans for
dependencies, the endpoint and serialisation); `fastapi_telemetry()` is the configuration create_app passes.
"""

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from app.core.config import Settings

# Probes are called every few seconds by the orchestrator: tracing them is noise.
UNTRACED_PATH_PREFIX = "/health/"

_provider: "TracerProvider | None" = None
_span_processors: "list[SpanProcessor]" = []
_enabled = False


def configure_telemetry(settings: Settings, span_processor: "SpanProcessor | None" = None) -> "TracerProvider | None":
    """Turn tracing on for this process and return its provider; None when tracing is off.

    `span_processor` is added to the provider (tests pass one with an in-memory exporter). Calling this again
    reuses the provider and adds nothing twice; after `disable_telemetry()` it starts from "off" again.
    """
    global _provider, _enabled
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if not (_enabled or endpoint or span_processor):
        return None
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if _provider is None:
        _provider = TracerProvider(resource=_resource(settings))
        trace.set_tracer_provider(_provider)
    if endpoint and not any(isinstance(p, BatchSpanProcessor) for p in _span_processors):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # An explicit endpoint is used as given: it is the base URL, the signal path is ours to add.
        _add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    if span_processor is not None and span_processor not in _span_processors:
        _add_span_processor(span_processor)
    _instrument_libraries(_provider)
    _enabled = True
    return _provider


def _add_span_processor(processor: "SpanProcessor") -> None:
    assert _provider is not None
    _provider.add_span_processor(processor)
    _span_processors.append(processor)


def fastapi_telemetry(tracer_provider: "TracerProvider | None") -> TelemetryConfig:
    """FastAPI's tracing, on exactly when `configure_telemetry` turned tracing on. Its server span encloses
    the whole middleware stack, so every log line of a request carries the request's trace id."""
    return {"tracing": tracer_provider is not None, "tracer_provider": tracer_provider, "exclude": _is_probe}


def _is_probe(scope: MutableMapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(UNTRACED_PATH_PREFIX)


def disable_telemetry() -> None:
    """Undo the library instrumentation (for tests). The provider stays: OpenTelemetry cannot replace it."""
    global _enabled
    if _provider is None:  # never turned on: nothing was instrumented (nor imported)
        _enabled = False
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    for instrumentor in (*_instrumentors(), SQLAlchemyInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    _enabled = False


def _resource(settings: Settings) -> "Resource":
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {
            "service.name": settings.APP_NAME,
            "service.version": settings.APP_VERSION,
            # The older attribute name and the current one: backends differ in which they read.
            "deployment.environment": settings.APP_ENVIRONMENT,
            "deployment.environment.name": settings.APP_ENVIRONMENT,
        }
    )


def _instrumentors() -> "tuple[BaseInstrumentor, ...]":
    """Redis, httpx, aiohttp, Celery. Each instrumentor class is a singleton: these are this process's."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    celery = CeleryInstrumentor()  # type: ignore[no-untyped-call]  # the package has no type hints
    return RedisInstrumentor(), HTTPXClientInstrumentor(), AioHttpClientInstrumentor(), celery


def _instrument_libraries(tracer_provider: "TracerProvider") -> None:
    for instrumentor in _instrumentors():
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=tracer_provider)


def instrument_engine(engine: AsyncEngine) -> None:
    """Trace `engine`'s SQL when tracing is on. Whoever builds an engine calls this: the API's lifespan and the
    worker's process start-up. The instrumentation traces one engine per process, the latest one handed in."""
    if not _enabled or _provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    sqlalchemy = SQLAlchemyInstrumentor()
    if sqlalchemy.is_instrumented_by_opentelemetry:
        sqlalchemy.uninstrument()
    sqlalchemy.instrument(engine=engine.sync_engine, tracer_provider=_provider)
