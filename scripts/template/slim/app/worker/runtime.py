"""Each worker process's runtime: one event loop in a thread of its own, one engine and session factory.

The worker runs Celery's threads pool (celery_app.py): each task runs in a pool thread, which hands its
coroutine to the loop and waits for the result (`run_task`), so the coroutines of many tasks run on the
one loop at once. Never a loop per call: pooled asyncpg connections are bound to the loop that opened
them. app/worker/main.py starts the runtime in the worker process (`worker_init`) and stops it at shutdown.

Each task has a deadline (CELERY_TASK_TIME_LIMIT_SECONDS): past it, its coroutine is cancelled wherever
it waits, its session closed and its transaction rolled back, and the task fails with TaskDeadlineError.
"""

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.db.engine import DatabaseTimeouts, create_engine, create_session_factory

T = TypeVar("T")


class TaskDeadlineError(Exception):
    """A task ran past its deadline: its coroutine was cancelled and its transaction rolled back."""


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.deadline_seconds = float(settings.CELERY_TASK_TIME_LIMIT_SECONDS)
        self.engine = create_engine(settings, DatabaseTimeouts.for_worker(settings))
        self.session_factory = create_session_factory(self.engine)
        self.pid = os.getpid()  # a forked child must not use it: the loop's thread is not there
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="task-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result; from any thread but the loop's own."""
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError("run() waits for the loop, so it cannot be called from the loop's own thread")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def run_with_deadline(self, use_case: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One use case in a session of its own, cancelled (and its transaction rolled back) at the deadline."""
        try:
            async with asyncio.timeout(self.deadline_seconds) as deadline:
                async with self.session_factory() as session:
                    return await use_case(session)
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise TaskDeadlineError(
                f"cancelled after its deadline of {self.deadline_seconds:g} s; its transaction was rolled back"
            ) from exc

    def close(self) -> None:
        self.run(self.engine.dispose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_runtime: WorkerRuntime | None = None


def start_runtime(settings: Settings) -> WorkerRuntime:
    """This process's runtime, replacing (and closing) an earlier one."""
    global _runtime
    stop_runtime()
    _runtime = WorkerRuntime(settings)
    return _runtime


def stop_runtime() -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


def run_task(use_case: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one use case (given a session of its own) on this process's loop, within the task deadline."""
    if _runtime is None:
        raise RuntimeError("The worker runtime is not started (app/worker/main.py starts it in each process).")
    if _runtime.pid != os.getpid():
        raise RuntimeError("The worker runtime was started in another process: run the worker's threads pool.")
    return _runtime.run(_runtime.run_with_deadline(use_case))
