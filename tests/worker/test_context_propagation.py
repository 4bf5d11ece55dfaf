"""The request id and the trace context travel from an API request, through Redis, into the worker's task.

The last test runs a real worker process: its log lines carry the API request's id and trace id, and the
spans it exports over OTLP continue the request's trace down to the webhook call.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.signals import after_task_publish
from loguru import logger
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis import Redis

from app.core.config import Settings
from app.core.context import get_request_id, request_id_var
from app.core.logging import configure_logging
from app.web.middleware.request_context import REQUEST_ID_HEADER
from app.worker.celery_app import REQUEST_ID_TASK_HEADER
from app.worker.queue import CeleryDeliveryQueue
from app.worker.task_context import bind_task_context, unbind_task_context
from app.worker.tasks import FAN_OUT_TASK
from tests.support.apps import build_app, serve
from tests.support.receiver import Receiver, running_receiver
from tests.support.settings import test_settings
from tests.support.worker import DEADLINE_SECONDS, Worker, WorkerStarter

QUEUE = "celery"  # Celery's default queue: a Redis list of JSON messages
OTLP_TRACES_PATH = "/v1/traces"  # where an OTLP/HTTP exporter posts spans, below its endpoint


def _take_published(settings: Settings, task_id: str) -> dict[str, Any]:
    """The message with `task_id`, read back from the broker and removed (no worker should run it)."""
    with Redis.from_url(settings.redis_url) as redis:
        for raw in redis.lrange(QUEUE, 0, -1):
            message: dict[str, Any] = json.loads(raw)
            if message["headers"]["id"] == task_id:
                redis.lrem(QUEUE, 1, raw)
                return message
    raise AssertionError(f"task {task_id} is not in the {QUEUE!r} queue")


async def test_a_published_task_carries_the_request_id_in_its_headers(settings: Settings, celery_app: Celery) -> None:
    published: list[dict[str, Any]] = []

    def record(headers: dict[str, Any], **_: Any) -> None:
        published.append(dict(headers))

    after_task_publish.connect(record, weak=False)
    token = request_id_var.set("req-from-api.1")
    try:
        await CeleryDeliveryQueue(celery_app).fan_out(uuid.uuid4())
    finally:
        request_id_var.reset(token)
        after_task_publish.disconnect(record)

    assert len(published) == 1
    message = _take_published(settings, published[0]["id"])
    assert message["headers"][REQUEST_ID_TASK_HEADER] == "req-from-api.1"


async def test_a_task_published_outside_a_request_has_no_request_id(settings: Settings, celery_app: Celery) -> None:
    result = await asyncio.to_thread(celery_app.send_task, FAN_OUT_TASK, args=[str(uuid.uuid4())])

    message = _take_published(settings, result.id)
    assert REQUEST_ID_TASK_HEADER not in message["headers"]


def _fake_task(**request: Any) -> Any:
    return SimpleNamespace(name="messages.fan_out", request=SimpleNamespace(**request))


@pytest.fixture
def log_records() -> Iterator[list[Any]]:
    configure_logging(test_settings())  # as the worker's process start does: it adds the ids to every record
    records: list[Any] = []
    handler_id = logger.add(lambda message: records.append(message.record), level="DEBUG", format="{message}")
    yield records
    logger.remove(handler_id)


def test_the_worker_binds_request_and_task_ids_for_the_task_and_unbinds_them_after(
    log_records: list[Any],
) -> None:
    bind_task_context(task_id="task-1", task=_fake_task(request_id="req-42"))
    logger.info("inside the task")
    assert get_request_id() == "req-42"
    unbind_task_context(task_id="task-1")
    logger.info("after the task")

    inside, after = log_records
    assert inside["extra"]["request_id"] == "req-42"
    assert inside["extra"]["task_id"] == "task-1"
    assert inside["extra"]["task"] == "messages.fan_out"
    assert "request_id" not in after["extra"]
    assert "task_id" not in after["extra"]
    assert get_request_id() is None


@pytest.mark.parametrize("header", [None, "has spaces", "x" * 129, ["not", "a", "string"]])
def test_a_task_without_a_usable_request_id_gets_a_new_one(header: object, log_records: list[Any]) -> None:
    bind_task_context(task_id="task-2", task=_fake_task(request_id=header))
    try:
        request_id = get_request_id()
        logger.info("inside the task")
    finally:
        unbind_task_context(task_id="task-2")

    assert request_id is not None
    assert request_id != header
    assert len(request_id) == 32
    assert log_records[0]["extra"]["request_id"] == request_id


def test_unbinding_an_unknown_task_is_harmless() -> None:
    unbind_task_context(task_id="never-bound")
    unbind_task_context()
    assert get_request_id() is None


# --- The whole path, with a real worker process --------------------------------------------------------


@pytest.fixture
async def traced_api(spans: InMemorySpanExporter, truncate_after: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API with tracing on and its real sessions (the worker must see committed rows) and real queue."""
    async with serve(build_app()) as client:
        yield client


@pytest.fixture
def collector() -> Iterator[Receiver]:
    """An OTLP/HTTP endpoint: it records the spans the worker exports."""
    with running_receiver() as receiver:
        receiver.url(path=OTLP_TRACES_PATH)
        yield receiver


@pytest.fixture
def traced_worker(worker_starter: WorkerStarter, collector: Receiver) -> Worker:
    return worker_starter(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.base_url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",  # export spans within 50 ms instead of 5 s
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
    )


def _exported_spans(collector: Receiver) -> list[Any]:
    spans = []
    for request in collector.to(collector.base_url + OTLP_TRACES_PATH):
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    return spans


async def _wait_for(condition: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _server_span(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    return next(s for s in spans if s.name == name and s.kind.name == "SERVER")


@pytest.mark.e2e
async def test_one_trace_and_one_request_id_from_the_request_to_the_webhook_call(
    traced_worker: Worker,
    traced_api: httpx.AsyncClient,
    spans: InMemorySpanExporter,
    collector: Receiver,
    receiver: Receiver,
    auth_headers: dict[str, str],
) -> None:
    client = traced_api
    request_id = f"e2e-{uuid.uuid4().hex}"
    created = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url(), "events": ["order.created"]}, headers=auth_headers
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    posted = await client.post(
        "/api/v1/messages",
        json={"event": "order.created", "payload": {"n": 1}},
        headers={**auth_headers, REQUEST_ID_HEADER: request_id},
    )
    assert posted.status_code == 202, posted.text
    # Waited for in a thread: the publish the request handed off runs on this loop.
    received = await asyncio.to_thread(receiver.wait_for, 1, DEADLINE_SECONDS)
    assert len(received) == 1, traced_worker.log()
    signature = received[0].headers["webhook-signature"]

    request_span = _server_span(spans.get_finished_spans(), "POST /api/v1/messages")
    trace_id = request_span.context.trace_id

    def published() -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.name == f"publish/{FAN_OUT_TASK}"]

    await _wait_for(published, "the publish span")  # ended once Redis's answer to the LPUSH came back
    publish = published()[0]
    assert publish.kind.name == "PRODUCER"
    assert publish.context.trace_id == trace_id

    # The worker's spans: the task continues the request's trace, and the webhook POST is inside it.
    def worker_spans() -> list[Any]:
        return [s for s in _exported_spans(collector) if int.from_bytes(s.trace_id, "big") == trace_id]

    def has_task_and_webhook_call() -> bool:
        # The task's span ends (and is exported) after the webhook call's: wait for both.
        exported = worker_spans()
        return any(s.name == "POST" and s.kind == s.SPAN_KIND_CLIENT for s in exported) and any(
            s.name == f"run/{FAN_OUT_TASK}" for s in exported
        )

    await _wait_for(has_task_and_webhook_call, "the worker's task and webhook spans")
    exported = worker_spans()
    task = next(s for s in exported if s.name == f"run/{FAN_OUT_TASK}")
    assert int.from_bytes(task.parent_span_id, "big") == publish.context.span_id
    webhook_call = next(s for s in exported if s.name == "POST" and s.kind == s.SPAN_KIND_CLIENT)
    span_ids = {s.span_id: s for s in exported}
    ancestor = webhook_call
    while ancestor.parent_span_id in span_ids:
        ancestor = span_ids[ancestor.parent_span_id]
    assert ancestor.span_id == task.span_id
    assert any(s.kind == s.SPAN_KIND_CLIENT and s.name != "POST" for s in exported)  # its SQL

    # The worker's log lines of that task: JSON, with the API's request id, the task id and the trace id.
    output = traced_worker.log()
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    task_lines = [line for line in lines if line["extra"].get("request_id") == request_id]
    assert task_lines, output
    for line in task_lines:
        assert line["extra"]["task_id"]
        assert line["extra"]["trace_id"] == format(trace_id, "032x")
    assert secret not in output
    assert secret.removeprefix("whsec_") not in output
    assert signature.split(",", 1)[1] not in output
