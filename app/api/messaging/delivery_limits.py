"""How many deliveries a worker process has in flight, per endpoint and in all, and which endpoints are slow.

One DeliveryLimits per worker process (app/worker/runtime.py), shared by every task's DeliveryService on the
process's one event loop; asyncio only, not thread-safe. An endpoint is a webhook URL: webhooks sharing a
URL share its slots.

- A slot per delivery in flight: at most `per_endpoint` to one endpoint, at most `total` in all. A task
  waits for its slots in line (FIFO). A fan-out's first attempt leaves the line if the endpoint turns slow
  while it waits (`slot(..., unless_slow=True)` raises EndpointSlowError), so that it is deferred instead of
  holding its task behind the slow attempts ahead of it.
- An endpoint is slow while its recent attempts took longer than `slow_after` seconds (an exponentially
  weighted average), or one in flight has taken longer already; and longer than SLOW_FACTOR times the
  process's typical attempt, so that a process too busy to keep up (every attempt takes long) does not
  find every endpoint slow. A fan-out defers its attempts to a slow endpoint instead of waiting for them
  (DeliveryService), so one slow endpoint never holds up the others.
- A deferred attempt comes back when it is due (`book`), and then waits for a slot like any other,
  unless the endpoint's line is full (`congested`): then it is deferred again.
"""

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

# Weight of the newest attempt in an endpoint's average duration, and in the process's typical one.
EWMA_WEIGHT = 0.3
TYPICAL_WEIGHT = 0.02
# How many times longer than the process's typical attempt a slow endpoint's attempts take.
SLOW_FACTOR = 4.0
# Idle endpoints beyond this many are forgotten, least recently used first.
MAX_TRACKED_ENDPOINTS = 10_000
# How often an attempt waiting in line with unless_slow looks whether its endpoint has turned slow.
SLOW_CHECK_SECONDS = 0.05


class EndpointSlowError(Exception):
    """The endpoint turned slow while the attempt waited in line for one of its slots; it left the line."""


@dataclass(eq=False)
class _Endpoint:
    slots: asyncio.Semaphore
    waiting: int = 0  # tasks in line for a slot
    held: int = 0  # slots taken (their attempts in flight, or waiting for a slot of the process's total)
    started: dict[object, float] = field(default_factory=dict)  # loop time each attempt in flight started
    average: float | None = None  # seconds an attempt takes, recently; None before the first
    booked_until: float = 0.0  # loop time until which deferred attempts have been handed out turns

    @property
    def idle(self) -> bool:
        return self.waiting == 0 and self.held == 0


class DeliveryLimits:
    def __init__(self, *, total: int, per_endpoint: int, slow_after: float = 0.5) -> None:
        self.total = total
        self.per_endpoint = per_endpoint
        self.slow_after = slow_after
        self._total = asyncio.Semaphore(total)
        self._endpoints: OrderedDict[str, _Endpoint] = OrderedDict()
        self.typical = 0.0  # seconds an attempt takes in this process, recently, whatever its endpoint
        self.in_flight = 0
        self.peak_in_flight = 0  # the most deliveries this process has had in flight at once

    @asynccontextmanager
    async def slot(self, endpoint: str, *, unless_slow: bool = False) -> AsyncIterator[None]:
        """Hold a slot for one attempt to `endpoint` while the block runs; wait in line for it first. With
        `unless_slow`, leave the line (EndpointSlowError) if the endpoint turns slow meanwhile."""
        state = self._endpoint(endpoint)
        state.waiting += 1
        try:
            if unless_slow and state.slots.locked():
                await self._acquire_unless_slow(endpoint, state)
            else:
                await state.slots.acquire()
        finally:
            state.waiting -= 1
        state.held += 1
        try:
            async with self._total:
                loop = asyncio.get_running_loop()
                token = object()
                state.started[token] = loop.time()
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    yield
                finally:
                    self.in_flight -= 1
                    elapsed = loop.time() - state.started.pop(token)
                    previous = elapsed if state.average is None else state.average
                    state.average = previous + EWMA_WEIGHT * (elapsed - previous)
                    self.typical += TYPICAL_WEIGHT * (elapsed - self.typical)
        finally:
            state.held -= 1
            state.slots.release()

    async def _acquire_unless_slow(self, endpoint: str, state: _Endpoint) -> None:
        # One acquire keeps the place in line; between looks it is waited for, never cancelled and retried.
        acquire = asyncio.ensure_future(state.slots.acquire())
        try:
            while not (await asyncio.wait({acquire}, timeout=SLOW_CHECK_SECONDS))[0]:
                if self.is_slow(endpoint):
                    raise EndpointSlowError(endpoint)
        except BaseException:
            if not acquire.cancel() and not acquire.cancelled() and acquire.exception() is None:
                state.slots.release()  # the slot came at the last moment: give it to the next in line
            raise

    def is_slow(self, endpoint: str) -> bool:
        state = self._endpoints.get(endpoint)
        if state is None:
            return False
        threshold = max(self.slow_after, SLOW_FACTOR * self.typical)
        if state.average is not None and state.average > threshold:
            return True
        now = asyncio.get_running_loop().time()
        return any(now - started > threshold for started in state.started.values())

    def congested(self, endpoint: str) -> bool:
        """Slow, and a full line already waits for its slots: another attempt should come back later."""
        state = self._endpoints.get(endpoint)
        return state is not None and self.is_slow(endpoint) and state.waiting >= self.per_endpoint

    def book(self, endpoint: str) -> float:
        """Seconds until a deferred attempt to `endpoint` should come back: its turn, after the attempts in
        flight, in line and already deferred, at the endpoint's recent pace."""
        state = self._endpoint(endpoint)
        now = asyncio.get_running_loop().time()
        pace = max(state.average or 0.0, self.slow_after) / self.per_endpoint  # seconds per attempt, all slots busy
        turn = max(state.booked_until, now + (len(state.started) + state.waiting) * pace)
        state.booked_until = turn + pace
        return turn - now

    def _endpoint(self, endpoint: str) -> _Endpoint:
        state = self._endpoints.get(endpoint)
        if state is None:
            state = self._endpoints[endpoint] = _Endpoint(asyncio.Semaphore(self.per_endpoint))
            self._forget_idle()
        else:
            self._endpoints.move_to_end(endpoint)
        return state

    def _forget_idle(self) -> None:
        excess = len(self._endpoints) - MAX_TRACKED_ENDPOINTS
        for name in list(self._endpoints)[:excess] if excess > 0 else []:
            if self._endpoints[name].idle:
                del self._endpoints[name]
