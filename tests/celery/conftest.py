"""A real Celery worker process, and the tables it reads emptied after a test that committed to them."""

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from app.celery_app import celery_app
from app.db.database import engine

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
DEADLINE_SECONDS = 30.0  # how long a test waits for the worker to do something


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path  # the worker's stderr: its log lines

    def log(self) -> str:
        return self.log_path.read_text()


WorkerStarter = Callable[[dict[str, str]], Worker]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[WorkerStarter]:
    """Starts `celery -A app.celery_worker worker` with extra environment variables; stops it after the test."""
    started: list[Worker] = []

    def start(env: dict[str, str]) -> Worker:
        # Tasks an earlier, interrupted run left in this Redis database would be consumed first.
        celery_app.control.purge()
        log_path = tmp_path / f"worker-{len(started)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
                [
                    *(CELERY, "-A", "app.celery_worker", "worker", "--concurrency=1"),
                    *("--without-heartbeat", "--without-mingle", "--without-gossip"),
                ],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        started.append(Worker(process, log_path))
        return started[-1]

    yield start
    for worker in started:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.process.kill()


@pytest.fixture
async def truncate_after() -> AsyncIterator[None]:
    """For a test whose API commits for real (the worker is another process and must see the rows)."""
    yield
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE deliveries, messages, webhooks"))
