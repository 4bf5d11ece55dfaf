"""Worker throughput (`make bench-worker`): messages in through the API, signed POSTs out to a local receiver.

End to end, as in production: the API (uvicorn) and the Celery worker (the entrypoint's worker command,
default concurrency) run as processes of their own, on a database of their own (`<DB_NAME>_bench_worker`,
rebuilt from the migrations) and a Redis database of their own (BENCH_WORKER_REDIS_DB, default 13,
flushed before each case). The webhooks point at `bench/receiver.py`, a separate process whose capacity
is load-tested at the start of the run. Each case starts a fresh API and worker, warms the worker up,
registers its webhooks through the API, posts its messages through the API (32 in flight, each with an
Idempotency-Key so that a 5xx can be retried) and polls the database until they are done:

    a   10 fast webhooks x 200 messages                  done: every message final
    b   the same, the receiver answering after 200 ms    done: every message final
    c   9 fast webhooks + 1 that never answers x 200     done: every delivery to the fast ones succeeded
    d1  client B alone: 10 fast webhooks x 100 messages  done: every message of B final
    d2  client B again, while client A posts 20 messages to one webhook answering after 2 s
    e   10 fast webhooks x 200, the worker SIGKILLed at 30 % and a new one started at once
                                                         done: every message final (recovery: from the
                                                         new worker's start)
    f   soak: 10 fast webhooks, BENCH_WORKER_SOAK_RATE messages/s (10) for BENCH_WORKER_SOAK_SECONDS (120;
        the targets ask for 600)                         done: every message final; worker RSS sampled

deliveries/s is deliveries / (first POST -> the last of them recorded). Worker RSS is summed over the
Celery main process and its pool children, at the end of the case. The results are printed as one
table, with the issue's targets met or not, and written as JSON to BENCH_WORKER_OUTPUT (default:
bench-worker.json in the temporary directory); the processes' logs stay in a temporary directory whose path is printed.
BENCH_WORKER_CASES=a,c runs only those cases.

The bench sets what it needs to work (its database and Redis database, APP_ENVIRONMENT=local and
WEBHOOK_ALLOW_PRIVATE_TARGETS=true for the loopback receiver, no JWKS: it mints its tokens with
JWT_SECRET) and defaults LOG_LEVEL=WARNING, a rate limit it cannot reach, and tracing and Sentry off.
Any other setting you export (CELERY_CONCURRENCY, WEBHOOK_TIMEOUT_SECONDS, ...) reaches the API and
the worker as usual. Case c alone runs the worker with WEBHOOK_TIMEOUT_SECONDS=BENCH_WORKER_HANG_TIMEOUT
(default 1 s instead of 10 s): every fan-out waits out the timeout, and at 10 s the case would run for
about twenty minutes.
"""

import asyncio
import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any, cast

import asyncpg
import httpx
import redis

from app.core.config import Settings
from app.core.security import create_access_token
from bench.receiver import measure_capacity, run
from tests.support.database import recreate_migrated

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Not 12: the HTTP bench flushes that one, and a flush loses the queued tasks.
REDIS_DB = os.environ.get("BENCH_WORKER_REDIS_DB", "13")
OUTPUT = Path(os.environ.get("BENCH_WORKER_OUTPUT") or Path(tempfile.gettempdir()) / "bench-worker.json")
HANG_TIMEOUT = os.environ.get("BENCH_WORKER_HANG_TIMEOUT", "1")
# Case f: a steady load this long, at this rate (the targets ask for 10 minutes: BENCH_WORKER_SOAK_SECONDS=600).
SOAK_SECONDS = float(os.environ.get("BENCH_WORKER_SOAK_SECONDS", "120"))
SOAK_RATE = float(os.environ.get("BENCH_WORKER_SOAK_RATE", "10"))
IN_FLIGHT = 32  # concurrent POST /api/v1/messages
POST_ATTEMPTS = 5
POLL_SECONDS = 0.2
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
EVENT = "order.created"
FINAL_STATUSES = ("delivered", "failed", "partially_failed")
# A warning or error line in the text or JSON log format, or a traceback.
PROBLEM = re.compile(r"\| (WARNING|ERROR|CRITICAL) *\||\"level\": \"(WARNING|ERROR|CRITICAL)\"|^Traceback")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bench_environment(base: Settings) -> dict[str, str]:
    """The settings the bench gives the API and the worker, on top of the environment they inherit."""
    defaults = {  # unless exported
        "LOG_LEVEL": "WARNING",  # a log line per request or task would be measured too
        "RATE_LIMIT_PER_MINUTE": "100000000",  # measure the worker, not the limiter's 429s
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        "SENTRY_DSN": "",
    }
    return {
        **{name: value for name, value in defaults.items() if name not in os.environ},
        "DB_NAME": f"{base.DB_NAME}_bench_worker",
        "REDIS_DB": REDIS_DB,
        "APP_ENVIRONMENT": "local",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",  # the receiver is on loopback
        "JWT_JWKS_URL": "",  # the bench mints its tokens with JWT_SECRET
        "PYTHONUNBUFFERED": "1",
    }


def worker_command(env: dict[str, str]) -> list[str]:
    """The worker role of entrypoint.sh (its pool and concurrency come from the settings: celery_app.py)."""
    return [
        str(BIN / "celery"),
        *("-A", "app.worker.main", "worker"),
        f"--loglevel={env.get('LOG_LEVEL', 'INFO')}",
    ]


def api_command(port: int) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        *("--factory", "app.main:create_app"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]


# Processes ------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_lines(self) -> list[str]:
        try:
            return [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return []

    def problems(self) -> list[str]:
        """The log's warning and error lines (LOG_LEVEL=WARNING keeps little else), and tracebacks."""
        return [line[:300] for line in self.log_lines() if PROBLEM.search(line)]


class Processes:
    """Everything the bench starts, each in a session (process group) of its own, so that stopping one
    stops its children too (the worker's pool), and Ctrl-C reaches the bench alone, which stops them."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env  # the environment every process gets
        self.running: list[Started] = []

    def start(
        self,
        name: str,
        command: Sequence[str],
        stdout: int | IO[bytes] | None = None,
        env: dict[str, str] | None = None,
    ) -> Started:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own executables, fixed arguments
                list(command),
                cwd=ROOT,
                env=self.env | (env or {}),
                stdin=subprocess.DEVNULL,
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        started = Started(name, process, log_path)
        self.running.append(started)
        return started

    def stop(self, started: Started) -> None:
        if started in self.running:
            self.running.remove(started)
        process = started.process
        if process.poll() is None:
            # The main process only: Celery's warm shutdown lets the pool finish its running tasks.
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)
        # The group too: a pool child could outlive its parent.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT)

    def stop_all(self) -> None:
        for started in reversed(list(self.running)):
            self.stop(started)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _process_tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def _cpu_seconds(root: int) -> float:
    """User + system CPU time of `root` and its descendants (those alive now)."""
    ticks = 0
    for pid in _process_tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def _proc_kib(pid: int, file: str, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mib: float  # summed: pages the pool children share with the main process count once per process
    pss_mib: float  # proportional set size: the shared pages split between them

    @classmethod
    def of(cls, root: int) -> "Memory":
        pids = _process_tree(root)
        rss = sum(_proc_kib(pid, "status", "VmRSS:") for pid in pids)
        pss = sum(_proc_kib(pid, "smaps_rollup", "Pss:") for pid in pids)
        return cls(len(pids), round(rss / 1024, 1), round(pss / 1024, 1))


# Cases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One client: its webhooks (receiver paths) and how many messages it posts."""

    sub: str
    paths: tuple[str, ...]
    messages: int
    per_second: float | None = None  # post at this steady rate instead of as fast as the API takes them


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    loads: tuple[Load, ...]  # posted at the same time; the first is the one measured
    timeout: float  # seconds, from the first POST
    fast_only: bool = False  # done when every delivery to a /hook/fast/ webhook has succeeded
    worker_env: dict[str, str] = field(default_factory=dict)
    # SIGKILL the worker once this share of the deliveries is recorded, and start a new one at once.
    kill_at: float | None = None

    @property
    def measured(self) -> Load:
        return self.loads[0]

    @property
    def expected(self) -> int:
        paths = [p for p in self.measured.paths if "/fast/" in p] if self.fast_only else self.measured.paths
        return self.measured.messages * len(paths)


def _fast(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"/hook/fast/{prefix}{i}" for i in range(count))


CASES = (
    Case("a", "fast receiver: 10 webhooks x 200 messages", (Load("bench-a", _fast("a", 10), 200),), timeout=120),
    Case(
        "b",
        "200 ms receiver: 10 webhooks x 200 messages",
        (Load("bench-b", tuple(f"/hook/delay/200/b{i}" for i in range(10)), 200),),
        timeout=180,
    ),
    Case(
        "c",
        f"9 fast + 1 never answering ({HANG_TIMEOUT} s timeout) x 200",
        (Load("bench-c", (*_fast("c", 9), "/hook/hang/c9"), 200),),
        timeout=300,
        fast_only=True,
        worker_env={"WEBHOOK_TIMEOUT_SECONDS": HANG_TIMEOUT},
    ),
    Case("d1", "B alone: 10 fast webhooks x 100 messages", (Load("bench-b1", _fast("b", 10), 100),), timeout=120),
    Case(
        "d2",
        "B beside A (20 messages to a 2 s webhook)",
        (Load("bench-b2", _fast("b", 10), 100), Load("bench-a2", ("/hook/delay/2000/a",), 20)),
        timeout=180,
    ),
    Case(
        "e",
        "SIGKILL mid-delivery, new worker at once: 10 x 200",
        (Load("bench-e", _fast("e", 10), 200),),
        timeout=300,
        kill_at=0.3,
    ),
    Case(
        "f",
        f"soak: 10 fast webhooks, {SOAK_RATE:g} messages/s for {SOAK_SECONDS:g} s",
        (Load("bench-f", _fast("f", 10), int(SOAK_RATE * SOAK_SECONDS), per_second=SOAK_RATE),),
        timeout=SOAK_SECONDS + 300,
    ),
)


@dataclass
class Result:
    case: str
    title: str
    outcome: str  # "done", "timeout" or "error: ..."
    deliveries: int  # the measured deliveries that succeeded
    expected: int
    seconds: float  # first POST -> the last of them recorded
    rate: float
    post_seconds: float  # first POST -> last 202 (every load of the case)
    attempts: int  # delivery rows of the measured client, failures included
    statuses: dict[str, int]  # the measured client's messages by status, at the end
    receiver_requests: int
    # CPU time used from the first POST until done, in % of one core (200 % = both cores of two)
    cpu_percent: dict[str, float]
    worker_cpu_ms_per_delivery: float  # the worker's CPU time (every process) per measured delivery
    worker: Memory  # at the end
    worker_peak_rss_mib: float
    longest_stall_seconds: float  # longest time without a new measured delivery before done
    timeline: list[tuple[float, int, int]]  # about once a second: (seconds, deliveries, attempts)
    problem_lines: dict[str, int]  # warning, error and traceback lines in the worker's and the API's log
    worker_problems: list[str]  # the first 20 of the worker's
    api_problems: list[str]
    load_average: float  # the machine's, over the last minute, at the end (others' work included)
    extra: dict[str, Any] = field(default_factory=dict)


class BenchError(Exception):
    pass


# Talking to the services ----------------------------------------------------------------------------


class Receiver:
    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.port = port
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=10)

    async def stats(self) -> dict[str, Any]:
        response = await self.client.get("/_stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def reset(self) -> None:
        (await self.client.post("/_reset")).raise_for_status()


async def _wait_ready(api: httpx.AsyncClient, started: Started) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if started.process.poll() is not None:
            raise BenchError(f"the API exited with {started.process.returncode}: {started.log_lines()[-5:]}")
        with contextlib.suppress(httpx.TransportError):
            if (await api.get("/health/ready")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise BenchError("the API was not ready in time")


def _headers(settings: Settings, sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_access_token(settings, sub)}"}


async def _register(
    settings: Settings, api: httpx.AsyncClient, receiver: Receiver, load: Load, event: str = EVENT
) -> None:
    for path in load.paths:
        body = {"url": receiver.base_url + path, "events": [event]}
        response = await api.post("/api/v1/webhooks", json=body, headers=_headers(settings, load.sub))
        if response.status_code != 201:
            raise BenchError(f"registering a webhook: {response.status_code} {response.text}")


@dataclass(frozen=True)
class Posted:
    first: float  # epoch seconds of the first POST
    last: float  # of the last 202
    retries: int  # POSTs repeated after a 5xx or a connection error
    failures: list[str]  # why (the first few)


async def _post(settings: Settings, api: httpx.AsyncClient, load: Load, event: str = EVENT) -> Posted:
    """Post the load's messages, IN_FLIGHT at a time.

    A 5xx or a connection error (on a shared machine: PostgreSQL out of connections) is retried a few
    times, as a client would; the Idempotency-Key makes a retry safe when the first try did store it.
    """
    headers = _headers(settings, load.sub)
    numbers = iter(range(load.messages))
    retries = 0
    failures: list[str] = []

    started = time.time()

    async def sender() -> None:
        nonlocal retries
        for n in numbers:
            if load.per_second is not None:  # message n is due n / rate seconds after the first
                await asyncio.sleep(max(0.0, started + n / load.per_second - time.time()))
            body = {"event": event, "payload": {"n": n, "order_id": f"{load.sub}-{n}", "total": "42.00"}}
            key = {"Idempotency-Key": f"{load.sub}-{n}"}
            for attempt in range(POST_ATTEMPTS):
                failure: str
                try:
                    response = await api.post("/api/v1/messages", json=body, headers=headers | key)
                except httpx.TransportError as exc:
                    failure = repr(exc)
                else:
                    if response.status_code == 202:
                        break
                    failure = f"{response.status_code} {response.text[:300]}"
                    if response.status_code < 500:
                        raise BenchError(f"posting a message: {failure}")
                if attempt == POST_ATTEMPTS - 1:
                    raise BenchError(f"posting a message, {POST_ATTEMPTS} times: {failure}")
                retries += 1
                failures.append(failure)
                await asyncio.sleep(0.25 * 2**attempt)

    await asyncio.gather(*(sender() for _ in range(min(IN_FLIGHT, load.messages))))
    return Posted(started, time.time(), retries, failures[:5])


@dataclass(frozen=True)
class Progress:
    done: int  # measured deliveries succeeded (fast only in case c)
    attempts: int
    final_messages: int
    last_done_at: float | None  # epoch seconds of the latest of them, from the database
    last_final_at: float | None


async def _progress(db: asyncpg.Connection, case: Case) -> Progress:
    sub = case.measured.sub
    pattern = "%/hook/fast/%" if case.fast_only else "%"
    deliveries = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE d.status = 'succeeded' AND w.url LIKE $2) AS done, count(*) AS attempts,"
        " max(d.created_at) FILTER (WHERE d.status = 'succeeded' AND w.url LIKE $2) AS last_done"
        " FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE w.client_id = $1",
        sub,
        pattern,
    )
    messages = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE status = ANY($2::text[])) AS final, max(updated_at) AS last_update"
        " FROM messages WHERE client_id = $1",
        sub,
        list(FINAL_STATUSES),
    )
    assert deliveries is not None
    assert messages is not None
    last_done, last_update = deliveries["last_done"], messages["last_update"]
    return Progress(
        done=deliveries["done"],
        attempts=deliveries["attempts"],
        final_messages=messages["final"],
        last_done_at=last_done.timestamp() if last_done else None,
        last_final_at=last_update.timestamp() if last_update else None,
    )


def _finished(case: Case, progress: Progress) -> float | None:
    """When the case's measured work was complete (epoch seconds, from the database), or None if not yet."""
    if case.fast_only:
        return progress.last_done_at if progress.done >= case.expected else None
    if progress.final_messages >= case.measured.messages:
        return progress.last_final_at
    return None


async def _durations(db: asyncpg.Connection, sub: str) -> list[int]:
    """How long the attempts to the measured client's webhooks took, as the worker recorded them."""
    row = await db.fetchrow(
        "SELECT percentile_disc(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY d.duration_ms) AS p, max(d.duration_ms) AS m"
        " FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id WHERE w.client_id = $1",
        sub,
    )
    return [*(row["p"] or [0, 0]), row["m"] or 0] if row else []


async def _statuses(db: asyncpg.Connection, sub: str) -> dict[str, int]:
    rows = await db.fetch("SELECT status, count(*) AS n FROM messages WHERE client_id = $1 GROUP BY status", sub)
    return {row["status"]: row["n"] for row in rows}


# One case -------------------------------------------------------------------------------------------


async def _reset_stores(settings: Settings, db: asyncpg.Connection) -> None:
    await db.execute("TRUNCATE deliveries, messages, webhooks")
    client: redis.Redis = redis.Redis.from_url(settings.redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


def _redis_keys(settings: Settings) -> dict[str, int]:
    """The broker's keys and their sizes: the queue ("celery"), the unacknowledged tasks, ..."""
    client: redis.Redis = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    sizes: dict[str, int] = {}
    try:
        for key in client.scan_iter(count=100):
            size = {"list": client.llen, "hash": client.hlen, "zset": client.zcard, "set": client.scard}.get(
                str(client.type(key))
            )
            sizes[str(key)] = int(size(key)) if size else 1
    finally:
        client.close()
    return sizes


async def _warm_up(
    settings: Settings, api: httpx.AsyncClient, db: asyncpg.Connection, worker: Started, receiver: Receiver
) -> None:
    """A few messages through every pool process: its connections, its HTTP client, its imports."""
    load = Load("bench-warmup", ("/hook/fast/warmup",), 8)
    await _register(settings, api, receiver, load, event="bench.warmup")
    await _post(settings, api, load, event="bench.warmup")
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise BenchError(f"the worker exited with {worker.process.returncode}: {worker.log_lines()[-5:]}")
        final = await db.fetchval(
            "SELECT count(*) FROM messages WHERE client_id = $1 AND status = 'delivered'", load.sub
        )
        if final == load.messages:
            return
        await asyncio.sleep(POLL_SECONDS)
    raise BenchError("the worker did not deliver the warm-up messages in time")


async def run_case(
    settings: Settings, case: Case, processes: Processes, db: asyncpg.Connection, receiver: Receiver
) -> Result:
    await _reset_stores(settings, db)
    port = _free_port()
    api = processes.start(f"{case.key}-api", api_command(port))
    worker = processes.start(f"{case.key}-worker", worker_command(processes.env), env=case.worker_env)
    limits = httpx.Limits(max_connections=2 * IN_FLIGHT, max_keepalive_connections=2 * IN_FLIGHT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits) as client:
            await _wait_ready(client, api)
            for load in case.loads:
                await _register(settings, client, receiver, load)
            await _warm_up(settings, client, db, worker, receiver)
            return await _measure(settings, case, client, db, api, worker, receiver, processes)
    finally:
        for started in [p for p in processes.running if p.name.startswith(f"{case.key}-")]:
            processes.stop(started)


class CpuMeter:
    """CPU time the bench's processes use over a window."""

    def __init__(self, processes: dict[str, Callable[[], float]]) -> None:
        self.processes = processes
        self.started = time.monotonic()
        self.at_start = {name: read() for name, read in processes.items()}

    def percent(self) -> dict[str, float]:
        elapsed = time.monotonic() - self.started
        return {name: round(100 * (read() - self.at_start[name]) / elapsed, 1) for name, read in self.processes.items()}


async def _measure(
    settings: Settings,
    case: Case,
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    api: Started,
    worker: Started,
    receiver: Receiver,
    processes: Processes,
) -> Result:
    await receiver.reset()
    receiver_cpu = (await receiver.stats())["cpu_seconds"]
    worker_cpu = _cpu_seconds(worker.process.pid)
    cpu = CpuMeter({"worker": lambda: _cpu_seconds(worker.process.pid), "api": lambda: _cpu_seconds(api.process.pid)})
    posting = asyncio.gather(*(_post(settings, client, load) for load in case.loads))
    start = time.time()
    deadline = time.monotonic() + case.timeout
    outcome, finished_at, peak_rss = "timeout", None, 0.0
    last_done, last_change, longest_stall = -1, time.monotonic(), 0.0
    timeline: list[tuple[float, int, int]] = []
    rss_samples: list[tuple[float, float]] = []  # (seconds, worker RSS MiB), about once a second
    restarted_at: float | None = None  # epoch seconds the new worker was started (case e)
    cpu_percent: dict[str, float] = {}
    try:
        while time.monotonic() < deadline:
            if posting.done() and (failure := posting.exception()) is not None:
                raise BenchError(f"posting failed: {failure!r}")
            if worker.process.poll() is not None:
                raise BenchError(f"the worker exited with {worker.process.returncode}")
            progress = await _progress(db, case)
            if case.kill_at is not None and restarted_at is None and progress.done >= case.kill_at * case.expected:
                spent = _cpu_seconds(worker.process.pid) - worker_cpu
                os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and anything it started
                worker.process.wait()
                worker = processes.start(f"{case.key}-worker-2", worker_command(processes.env), env=case.worker_env)
                restarted_at = time.time()
                worker_cpu = _cpu_seconds(worker.process.pid) - spent  # both workers' CPU, in the end
            now = time.monotonic()
            if progress.done != last_done:
                if last_done >= 0:
                    longest_stall = max(longest_stall, now - last_change)
                last_done, last_change = progress.done, now
            if not timeline or time.time() - start >= timeline[-1][0] + 1:
                timeline.append((round(time.time() - start, 1), progress.done, progress.attempts))
                rss = Memory.of(worker.process.pid).rss_mib
                rss_samples.append((round(time.time() - start, 1), rss))
                peak_rss = max(peak_rss, rss)
            finished_at = _finished(case, progress)
            if finished_at is not None and posting.done():
                outcome = "done"
                break
            await asyncio.sleep(POLL_SECONDS)
        else:
            longest_stall = max(longest_stall, time.monotonic() - last_change)
    except BenchError as exc:
        outcome = f"error: {exc}"
    finally:
        cpu_percent = cpu.percent()
        worker_cpu = _cpu_seconds(worker.process.pid) - worker_cpu
        stats = await receiver.stats()
        cpu_percent["receiver"] = round(100 * (stats["cpu_seconds"] - receiver_cpu) / (time.time() - start), 1)
        if not posting.done():
            posting.cancel()
        post_times = (await asyncio.gather(posting, return_exceptions=True))[0]
    memory = Memory.of(worker.process.pid)
    first_post, last_accept, post_retries, post_failures = start, start, 0, []
    if isinstance(post_times, list) and post_times and all(isinstance(p, Posted) for p in post_times):
        first_post = post_times[0].first  # the measured load's first POST
        last_accept = max(p.last for p in post_times)
        post_retries = sum(p.retries for p in post_times)
        post_failures = [failure for p in post_times for failure in p.failures]
    progress = await _progress(db, case)
    end = finished_at if outcome == "done" and finished_at is not None else time.time()
    seconds = end - first_post
    extra: dict[str, Any] = {}
    extra["post_retries"] = post_retries
    if post_failures:
        extra["post_failures"] = post_failures
    extra["attempt_ms_p50_p95_max"] = await _durations(db, case.measured.sub)
    for other in case.loads[1:]:
        extra[f"statuses_of_{other.sub}"] = await _statuses(db, other.sub)
    if outcome != "done":  # tasks lost (say, another process flushed the Redis database) or still queued?
        extra["redis_keys_at_end"] = _redis_keys(settings)
    if restarted_at is not None:
        # From the new worker's start to the last delivery recorded (the killed worker's work included).
        extra["recovery_seconds"] = round(end - restarted_at, 1)
    if case.key == "f" and len(rss_samples) >= 8:
        quarter = len(rss_samples) // 4
        extra["rss_mib_after_first_quarter"] = rss_samples[quarter][1]
        extra["rss_mib_peak_last_quarter"] = max(rss for _, rss in rss_samples[-quarter:])
        extra["rss_samples"] = rss_samples
    if case.fast_only:
        extra["receiver_requests_to_never_answering"] = sum(
            n for path, n in stats["by_path"].items() if "/hang/" in path
        )
    return Result(
        case=case.key,
        title=case.title,
        outcome=outcome,
        deliveries=progress.done,
        expected=case.expected,
        seconds=round(seconds, 2),
        rate=round(progress.done / seconds, 1) if seconds > 0 else 0.0,
        post_seconds=round(last_accept - first_post, 2),
        attempts=progress.attempts,
        statuses=await _statuses(db, case.measured.sub),
        receiver_requests=stats["total"],
        cpu_percent=cpu_percent,
        worker_cpu_ms_per_delivery=round(1000 * worker_cpu / progress.done, 2) if progress.done else 0.0,
        worker=memory,
        worker_peak_rss_mib=max(peak_rss, memory.rss_mib),
        longest_stall_seconds=round(longest_stall, 1),
        timeline=timeline,
        problem_lines={"worker": len(worker.problems()), "api": len(api.problems())},
        worker_problems=worker.problems()[:20],
        api_problems=api.problems()[:20],
        load_average=round(os.getloadavg()[0], 2),
        extra=extra,
    )


# The run --------------------------------------------------------------------------------------------


def _print_table(results: list[Result], capacity: float) -> None:
    header = (
        f"{'case':<50} {'deliveries':>10} {'seconds':>8} {'deliv/s':>8} {'post s':>7} {'receiver cap/s':>14}"
        f" {'rx load':>7} {'worker CPU':>10} {'worker RSS MiB':>16} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    notes: list[str] = []
    for r in results:
        load = (r.receiver_requests / r.seconds) / capacity * 100 if r.seconds > 0 and capacity else 0.0
        name = f"{r.case:<3}{r.title}" + ("" if r.outcome == "done" else f" [{r.outcome[:20]}]")
        retried = r.extra.get("post_retries", 0)
        if retried or any(r.problem_lines.values()):
            name = f"{name[:47]} *{len(notes) + 1}"
            notes.append(
                f"*{len(notes) + 1} case {r.case}: {retried} POSTs retried after a 5xx or a connection error;"
                f" warning/error lines in the logs: worker {r.problem_lines['worker']}, API {r.problem_lines['api']}"
            )
        rss = f"{r.worker.rss_mib:.0f} ({r.worker.processes} procs)"
        print(
            f"{name:<50} {r.deliveries:>10} {r.seconds:>8.2f} {r.rate:>8.1f} {r.post_seconds:>7.2f} {capacity:>14.0f}"
            f" {load:>6.1f}% {r.cpu_percent.get('worker', 0):>9.0f}% {rss:>16} {r.load_average:>5.1f}"
        )
    print(
        "deliveries/s: measured deliveries / (first POST -> the last of them recorded); post s: first POST -> last"
        " 202; rx load: receiver requests/s as a share of its capacity; worker CPU: % of one core, first POST ->"
        " done; worker RSS: summed over its processes at the end; load: 1-minute load average at the end"
    )
    for note in notes:
        print(note)


def _targets(results: list[Result], comparisons: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The issue's targets: (target, what was measured, met?); None where the case did not run or finish."""
    by_key = {r.case: r for r in results}

    def rate(key: str) -> float | None:
        result = by_key.get(key)
        return result.rate if result is not None and result.outcome == "done" else None

    rows: list[tuple[str, str, bool | None]] = []
    for key, target in (("a", 600.0), ("b", 400.0)):
        measured = rate(key)
        shown = "not run" if measured is None else f"{measured:.1f}/s"
        rows.append(
            (f"case {key}: >= {target:g} deliveries/s", shown, None if measured is None else measured >= target)
        )
    ratio = comparisons.get("c_fast_rate_vs_a")
    shown = "not run" if ratio is None else f"{ratio:.1%} of a"
    rows.append(("case c: the fast endpoints keep > 90 % of a's rate", shown, None if ratio is None else ratio > 0.9))
    slowdown = comparisons.get("d_slowdown")
    shown = "not run" if slowdown is None else f"{slowdown}x"
    rows.append(("case d: client B slowed <= 1.5x", shown, None if slowdown is None else slowdown <= 1.5))
    e = by_key.get("e")
    recovery = e.extra.get("recovery_seconds") if e is not None and e.outcome == "done" else None
    shown = "not run" if recovery is None else f"{recovery} s after the new worker started"
    rows.append(
        ("case e: all delivered <= 45 s after a new worker", shown, None if recovery is None else recovery <= 45)
    )
    f = by_key.get("f")
    if f is not None and "rss_mib_peak_last_quarter" in f.extra:
        early, late = f.extra["rss_mib_after_first_quarter"], f.extra["rss_mib_peak_last_quarter"]
        rows.append(
            (
                f"case f: worker RSS steady over {SOAK_SECONDS:g} s (last quarter within 5 % of the first)",
                f"{early:.0f} -> {late:.0f} MiB",
                late <= early * 1.05,
            )
        )
    else:
        rows.append(("case f: worker RSS steady", "not run", None))
    return rows


def _comparisons(results: list[Result]) -> dict[str, Any]:
    by_key = {r.case: r for r in results}
    found: dict[str, Any] = {}
    a, c = by_key.get("a"), by_key.get("c")
    if a and c and a.outcome == c.outcome == "done" and a.rate:
        found["c_fast_rate_vs_a"] = round(c.rate / a.rate, 3)
    d1, d2 = by_key.get("d1"), by_key.get("d2")
    if d1 and d2 and d1.outcome == d2.outcome == "done" and d1.seconds:
        found["d_slowdown"] = round(d2.seconds / d1.seconds, 1)
    return found


async def bench(settings: Settings, processes: Processes, cases: Sequence[Case]) -> dict[str, Any]:
    receiver_process = processes.start("receiver", [sys.executable, "-m", "bench.receiver"], stdout=subprocess.PIPE)
    assert receiver_process.process.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(receiver_process.process.stdout.readline), STARTUP_TIMEOUT)
    if not line.startswith(b"PORT "):
        raise BenchError(f"the receiver did not start: {receiver_process.log_lines()[-5:]}")
    receiver = Receiver(int(line.split()[1]))
    capacity = await measure_capacity("127.0.0.1", receiver.port)
    print(f"receiver capacity: {capacity:.0f} requests/s (load test: 64 keep-alive connections, 3 s)")
    command = ["celery", *worker_command(processes.env)[1:]]
    print(f"worker: {' '.join(command)}; logs in {processes.log_dir}", flush=True)
    password = settings.DB_PASSWORD.get_secret_value() or None
    db = await asyncpg.connect(
        host=settings.DB_HOST,
        port=settings.DB_PORT,
        user=settings.DB_USERNAME,
        password=password,
        database=settings.DB_NAME,
    )
    results: list[Result] = []
    try:
        for case in cases:
            print(f"case {case.key}: {case.title} ...", flush=True)
            result = await run_case(settings, case, processes, db, receiver)
            print(
                f"  {result.outcome}: {result.deliveries}/{result.expected} deliveries in {result.seconds:.2f} s"
                f" ({result.rate:.1f}/s), {result.attempts} attempts recorded, receiver got"
                f" {result.receiver_requests}, messages {result.statuses}, longest stall"
                f" {result.longest_stall_seconds} s, CPU % {result.cpu_percent},"
                f" attempt ms p50/p95/max {result.extra.get('attempt_ms_p50_p95_max')},"
                f" POSTs retried {result.extra.get('post_retries', '?')},"
                f" warning/error lines: {result.problem_lines}",
                flush=True,
            )
            for problem in (result.worker_problems + result.api_problems)[:3]:
                print(f"    {problem}")
            results.append(result)
    finally:
        await db.close()
        await receiver.client.aclose()
    print()
    _print_table(results, capacity)
    comparisons = _comparisons(results)
    if "c_fast_rate_vs_a" in comparisons:
        print(
            f"c vs a: the fast endpoints get {comparisons['c_fast_rate_vs_a']:.1%} of case a's rate"
            f" beside one that never answers (timeout {HANG_TIMEOUT} s)"
        )
    if "d_slowdown" in comparisons:
        print(f"d: client B's 100 messages take {comparisons['d_slowdown']}x as long while client A's are delivered")
    targets = _targets(results, comparisons)
    print("\ntargets (this machine, the worker command above):")
    for target, measured, met in targets:
        verdict = "-" if met is None else ("met" if met else "NOT met")
        print(f"  {verdict:<8} {target:<72} {measured}")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "worker_command": command,
        "api_command": ["uvicorn", *api_command(0)[1:]],
        "hang_timeout_seconds": float(HANG_TIMEOUT),
        "in_flight_posts": IN_FLIGHT,
        "receiver_capacity_per_second": round(capacity),
        "cases": [asdict(r) for r in results],
        "comparisons": comparisons,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in targets],
    }


def _selected_cases() -> list[Case]:
    """BENCH_WORKER_CASES=a,c runs those alone (default: all)."""
    wanted = [key.strip() for key in os.environ.get("BENCH_WORKER_CASES", "").split(",") if key.strip()]
    unknown = set(wanted) - {case.key for case in CASES}
    if unknown:
        raise SystemExit(f"unknown case(s) {sorted(unknown)}; there are {[case.key for case in CASES]}")
    return [case for case in CASES if not wanted or case.key in wanted]


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP end the run through the clean-up, even where SIGINT was inherited ignored
    (a background job of a non-interactive shell)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main() -> int:
    cases = _selected_cases()
    began = time.monotonic()
    overrides = bench_environment(Settings())
    # What the API and the worker read (their environment, the same .env beneath it): the database, the
    # Redis database, and the JWT secret, issuer and audience the bench's tokens must carry.
    settings = Settings(**cast(dict[str, Any], overrides))
    recreate_migrated(settings)
    processes = Processes(Path(tempfile.mkdtemp(prefix="bench-worker-")), {**os.environ, **overrides})
    with _terminate_as_interrupt():
        try:
            report = run(bench(settings, processes, cases))
        except KeyboardInterrupt:
            print("interrupted; stopping the processes", file=sys.stderr)
            return 130
        finally:
            processes.stop_all()
    report["wall_seconds"] = round(time.monotonic() - began, 1)
    OUTPUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"whole run {report['wall_seconds']} s; figures written to {OUTPUT}")
    failed = [c["case"] for c in report["cases"] if c["outcome"] != "done"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
