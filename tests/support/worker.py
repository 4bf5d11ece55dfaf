"""A real Celery worker process, started as `celery -A app.worker.main worker` with the suite's settings."""

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Settings
from tests.support.settings import as_environment

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")
DEADLINE_SECONDS = 30.0  # how long a test waits for the worker to do something


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path  # the worker's stderr: its log lines

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


WorkerStarter = Callable[[dict[str, str]], Worker]  # the `worker_starter` fixture: extra environment -> a worker


def start_worker(settings: Settings, log_path: Path, **overrides: str) -> Worker:
    """A worker process configured by `settings` (as environment variables) plus `overrides`."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
            [
                *(CELERY, "-A", "app.worker.main", "worker", "--concurrency=1"),
                *("--without-heartbeat", "--without-mingle", "--without-gossip"),
            ],
            cwd=ROOT,
            env={**os.environ, **as_environment(settings), **overrides},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    return Worker(process, log_path)
