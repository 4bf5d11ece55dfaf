"""At most `limit` requests inside the application at once; the others wait at the door, first come, first served.

Under load above what the process can serve, requests queue somewhere. Inside the application each one holds
what it has built so far (the request, its dependencies, its session, its task waiting for a pooled connection):
some 36 KB apiece, so 256 waiting requests cost the process about 9 MB, and the allocator keeps most of it after
the load is gone. Waiting here, a request holds only what the middleware outside this one built (about 8 KB).
The limit is well above the database pool (MAX_CONCURRENT_REQUESTS 32 against DB_POOL_SIZE 10 by default), so
the pool never idles while requests wait.

A request that is not let in within `timeout_seconds` gets 503 with Retry-After, like one that gets no database
connection in time (app/web/errors.py). Paths under `exempt_prefix` (the health probes) never wait: an orchestrator
must be able to tell a busy process from a dead one.
"""

import asyncio
import time

from loguru import logger
from starlette.types import ASGIApp, Receive, Scope, Send

from app.web.problem import problem_response

RETRY_AFTER_SECONDS = 1
WARNING_INTERVAL_SECONDS = 60.0


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, limit: int, timeout_seconds: float, exempt_prefix: str = "/health/") -> None:
        self.app = app
        self.limit = limit
        self.timeout_seconds = timeout_seconds
        self.exempt_prefix = exempt_prefix
        # Fair: once a request waits, a newcomer queues behind it even if a slot is free at that moment.
        self._slots = asyncio.Semaphore(limit)
        self._warned_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            self._warn()
            detail = "The server is busy with other requests; retry shortly."
            await problem_response(503, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()

    async def _enter(self) -> bool:
        if not self._slots.locked():  # the usual case: a free slot and nobody waiting, taken without a timer
            await self._slots.acquire()
            return True
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self._slots.acquire()
        except TimeoutError:
            return False
        return True

    def _warn(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            logger.warning(
                "{} requests are being served and others waited over {} s: answering 503 (MAX_CONCURRENT_REQUESTS)",
                self.limit,
                self.timeout_seconds,
            )
