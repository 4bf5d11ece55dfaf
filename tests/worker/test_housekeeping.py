"""Housekeeping while PostgreSQL is down: each run is skipped and the outage logged once, not once per run
with a traceback; a run once it is back says so. The outage is real: the runtime's engine goes through a TCP
proxy in front of the suite's PostgreSQL, which the test cuts."""

import asyncio
import time
from collections.abc import Callable

import pytest
from celery import Celery

from app.core.outages import OutageEpisodes
from app.worker import housekeeping
from app.worker.runtime import start_runtime, stop_runtime
from app.worker.tasks import PURGE_DELIVERIES_TASK, PURGE_MESSAGES_TASK, REQUEUE_STRANDED_TASK
from tests.support.fakes import RecordingQueue
from tests.support.settings import test_settings
from tests.support.tcp_proxy import TcpProxy

HOUSEKEEPING = (REQUEUE_STRANDED_TASK, PURGE_DELIVERIES_TASK, PURGE_MESSAGES_TASK)


async def test_while_the_database_is_down_housekeeping_is_skipped_and_said_once(
    celery_app: Celery,
    database_proxy: TcpProxy,
    log_lines: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(housekeeping, "_outage", OutageEpisodes())  # no episode left over from another test
    start_runtime(test_settings(DB_HOST="127.0.0.1", DB_PORT=database_proxy.port), RecordingQueue())
    tasks = [celery_app.tasks[name] for name in HOUSEKEEPING]
    try:
        database_proxy.cut()
        # Two rounds of beat's runs, each traced by Celery as in a worker (eagerly, in a thread: the proxy runs
        # on this loop).
        down = [(await asyncio.to_thread(task.apply)).state for task in tasks * 2]
        database_proxy.restore()
        back = [(await asyncio.to_thread(task.apply)) for task in tasks]
    finally:
        await asyncio.to_thread(stop_runtime)

    assert down == ["IGNORED"] * 6
    assert [result.state for result in back] == ["SUCCESS"] * 3
    assert [result.result for result in back] == [0, 0, 0]
    errors = [message for level, message in log_lines if level == "ERROR"]
    assert len(errors) == 1, errors
    assert "cannot reach the database" in errors[0]
    assert REQUEUE_STRANDED_TASK in errors[0]
    assert "Traceback" not in errors[0]
    skipped = [message for level, message in log_lines if level == "DEBUG" and "Housekeeping skipped" in message]
    assert len(skipped) == 5
    infos = [message for level, message in log_lines if level == "INFO" and "reaches the database again" in message]
    assert len(infos) == 1
    assert "6 runs were skipped" in infos[0]


async def test_while_the_database_is_down_the_sweep_says_so_once_not_every_second(
    database_proxy: TcpProxy, log_lines: list[tuple[str, str]]
) -> None:
    runtime = start_runtime(test_settings(DB_HOST="127.0.0.1", DB_PORT=database_proxy.port), RecordingQueue())

    async def empty_broker() -> int:
        return 0

    def sweep_lines(level: str) -> list[str]:
        return [message for said, message in log_lines if said == level and "takeover sweep" in message]

    try:
        database_proxy.cut()
        runtime.start_sweeping(empty_broker)
        await _until(lambda: len(sweep_lines("DEBUG")) >= 2, 10)  # three sweeps failed
    finally:
        await asyncio.to_thread(stop_runtime)

    assert len(sweep_lines("WARNING")) == 1


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
