"""The API's DeliveryQueue: Celery task messages pushed onto the broker's Redis list with LPUSH.

The worker is a real Celery worker (app/worker/main.py) and consumes these like any task it is sent. The API
does not go through Celery to send them: `send_task` with kombu costs about 1 ms of CPU per message and a
blocking socket call in a thread, as much as the rest of a POST. This builds the same message (Celery's task
protocol 2, as kombu's Redis transport stores it: a JSON envelope with the task's headers, its properties and
a base64 JSON body) and sends it with redis-py's asyncio client, on the event loop: some 50 us of CPU. Messages
published while an LPUSH is in flight go together in the next one (app/core/batching.py): under load, one
round trip carries many; the list receives them in the same order as one LPUSH each would have.

What the worker relies on, and a real worker checks (tests/worker/test_publisher.py): the queue key (Celery's
default queue, a Redis list the worker pops from), the task name and id in the headers, `eta` for a delayed
task, the body `[args, kwargs, embed]`, and the request id and trace context as extra headers (the worker
binds them for the task: app/worker/task_context.py and the Celery instrumentation).

Nothing here imports Celery, kombu or the worker's tasks: the API process does not load them at all.
"""

import base64
import json
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry import propagate, trace
from redis.asyncio import Redis

from app.core.batching import Batcher
from app.core.context import get_request_id

# The task names and the header of app/worker/tasks.py and app/worker/celery_app.py; a test holds them equal.
FAN_OUT_TASK = "messages.fan_out"
RETRY_TASK = "messages.retry_delivery"
REQUEST_ID_TASK_HEADER = "request_id"
DEFAULT_QUEUE = "celery"  # Celery's task_default_queue: the Redis list of that name
# Celery's `embed`: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_tracer = trace.get_tracer(__name__)


class RedisTaskPublisher:
    def __init__(self, redis: Redis, queue: str = DEFAULT_QUEUE) -> None:
        self.redis = redis
        self.queue = queue
        self._origin = f"api{os.getpid()}@{socket.gethostname()}"
        self._reply_to = str(uuid.uuid4())  # Celery names the publishing app so; no results are ever sent back
        self._pushes: Batcher[str, None] = Batcher(self._push)

    async def fan_out(self, message_id: uuid.UUID) -> None:
        await self.publish(FAN_OUT_TASK, [str(message_id)])

    async def retry(
        self, message_id: uuid.UUID, webhook_id: uuid.UUID, attempt: int, last_attempt: int, delay: float
    ) -> None:
        await self.publish(RETRY_TASK, [str(message_id), str(webhook_id), attempt, last_attempt], delay)

    async def publish(self, task: str, args: list[Any], delay: float = 0.0) -> None:
        """Push one task message; the worker runs it `delay` seconds from now (at once if 0)."""
        span = trace.get_current_span()
        if not span.get_span_context().is_valid:  # tracing off, or outside a traced request
            await self._pushes.submit(self.message(task, args, delay))
            return
        with _tracer.start_as_current_span(f"publish/{task}", kind=trace.SpanKind.PRODUCER) as producer:
            producer.set_attribute("messaging.system", "celery")
            producer.set_attribute("messaging.destination.name", self.queue)
            producer.set_attribute("celery.task_name", task)
            await self._pushes.submit(self.message(task, args, delay))

    async def _push(self, messages: list[str]) -> list[None]:
        await self.redis.lpush(self.queue, *messages)  # pushed one after the other, as one LPUSH each would
        return [None] * len(messages)

    def message(self, task: str, args: list[Any], delay: float = 0.0) -> str:
        """The task message as kombu's Redis transport stores it (Celery's task protocol 2)."""
        task_id = str(uuid.uuid4())
        eta = (datetime.now(UTC) + timedelta(seconds=delay)).isoformat() if delay > 0 else None
        headers: dict[str, Any] = {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": eta,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": self._origin,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        }
        request_id = get_request_id()
        if request_id is not None:
            headers[REQUEST_ID_TASK_HEADER] = request_id
        propagate.inject(headers)  # the trace context (traceparent), when a span is current; else nothing
        body = base64.b64encode(json.dumps([args, {}, _EMBED]).encode()).decode()
        envelope = {
            "body": body,
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "correlation_id": task_id,
                "reply_to": self._reply_to,
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": self.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return json.dumps(envelope)
