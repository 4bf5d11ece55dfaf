"""Acknowledgements lost with the broker connection must not stop the worker from consuming.

Tasks are acknowledged late, when they finish. One that finishes while Redis is frozen or out of reach cannot
be acknowledged: kombu logs "Couldn't ack" and keeps the task counted as delivered, holding one of the
consumer's prefetch slots (CELERY_CONCURRENCY of them) for as long as that connection lives. Once lost acks
hold every slot, the consumer never asks Redis for a task again, so it has no reply to wait for either, and
its health check (BROKER_HEALTH_CHECK_INTERVAL_SECONDS) never finds the dead connection: the worker stays
idle after Redis is back. Here the slot of a lost acknowledgement is given back at once. The task stays in
Redis's unacknowledged set and is handed out again after the visibility timeout; every task is safe to run
twice (a fan-out of a delivered message does nothing).
"""

from typing import Any

from celery import Task
from celery.worker.request import Request
from kombu.transport.virtual import QoS


class ConsumingRequest(Request):
    def acknowledge(self) -> None:
        super().acknowledge()  # on a connection error kombu logs "Couldn't ack" and returns
        message: Any = self.message
        if message.acknowledged:
            return
        qos = getattr(message.channel, "qos", None)
        if isinstance(qos, QoS):  # kombu's in-process accounting of Redis (virtual) channels: no I/O
            QoS.ack(qos, message.delivery_tag)


class ConsumingTask(Task[Any, Any]):  # the base of every task of the app (celery_app.py)
    Request = f"{__name__}:{ConsumingRequest.__name__}"
