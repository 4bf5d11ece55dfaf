"""HTTP benchmark (`make bench`): the project's API against a bare baseline app, both served by uvicorn, driven
by wrk over loopback.

One run: rebuild a database of its own (`<DB_NAME>_bench_http`, dbmate migrations) and seed it; start the
project's API (`uvicorn --factory app.main:create_app`, entrypoint.sh's settings with one worker, production
settings, every feature on) and the baseline (bench/baseline.py) on free ports; check that both answer the
bench's requests with the same shapes; then per series a short warm-up and a measured wrk run against each.
Prints one table (req/s, p50, p99, non-2xx, socket errors, RSS, and the project's ratio to the baseline)
and writes the same figures as JSON (BENCH_JSON, default: bench-http.json in the temporary directory).

The API is only ever a subprocess spoken to over HTTP: nothing here imports app modules that hold
process-wide state. Knobs (environment): BENCH_DURATION (seconds per measured run, 12), BENCH_WARMUP (3),
BENCH_WRK_THREADS (1), BENCH_TIMEOUT (wrk's per-request timeout in seconds, 5), BENCH_REDIS_DB (12),
BENCH_BASELINE_POOL (32), BENCH_JSON, BENCH_KEEP_DB=1 (keep the database afterwards).
"""

import asyncio
import base64
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr
from redis import Redis

from app.core.config import Settings
from app.core.security import create_access_token

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WRK_SCRIPTS = Path("bench") / "wrk"  # relative: wrk runs from ROOT, and the scripts find common.lua there

CLIENT_ID = "bench-client"
OTHER_CLIENT_ID = "bench-other"  # rows the indexes must skip
SEED_ROWS = 5_000  # per client
ID_COUNT = 1_000  # seeded ids the GET-by-id series cycles through
PAGE_SIZE = 50
MESSAGE_KEYS = {"id", "event", "payload", "status", "created_at", "updated_at"}
# The project's pages leave the payload out (bounded pages); the baseline's, unchanged, carry it.
PAGE_ITEM_KEYS = MESSAGE_KEYS - {"payload"}
CORS_ORIGINS = ["https://app.example.com", "https://admin.example.com"]
POST_BODY = {"event": "order.created", "payload": {"order_id": 42, "amount_cents": 1999, "currency": "EUR"}}
READY_TIMEOUT_SECONDS = 60.0


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DURATION = _env_int("BENCH_DURATION", 12)
WARMUP = _env_int("BENCH_WARMUP", 3)
WRK_THREADS = _env_int("BENCH_WRK_THREADS", 1)
WRK_TIMEOUT = _env_int("BENCH_TIMEOUT", 5)
REDIS_DB = _env_int("BENCH_REDIS_DB", 12)
BASELINE_POOL = _env_int("BENCH_BASELINE_POOL", 32)
JSON_PATH = Path(os.environ.get("BENCH_JSON") or Path(tempfile.gettempdir()) / "bench-http.json")


class BenchError(Exception):
    """A setup problem that makes the figures meaningless: reported, then the run stops."""


@dataclass(frozen=True)
class Series:
    name: str
    script: str
    connections: int


SERIES = (
    Series("GET /messages/{id}", "get_by_id.lua", 32),
    Series("POST /messages", "post_message.lua", 32),
    Series("GET /messages?limit=50", "list_messages.lua", 32),
    Series("GET /messages/{id}", "get_by_id.lua", 64),
    Series("GET /messages/{id}", "get_by_id.lua", 256),
)


@dataclass
class Figures:
    """One measured wrk run against one server."""

    requests: int
    seconds: float
    ok_per_second: float  # 2xx/3xx answers per second: fast errors do not count as throughput
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int  # wrk counts answers with a status of 400 or more
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    rss_mib: float | None  # of the server process, right after the run
    cpu_ms_per_request: float | None  # the server process's CPU time (user + system) over the run
    pg_sessions_opened: int | None  # new PostgreSQL sessions on the bench's database during the run
    log_lines: dict[str, int] = field(default_factory=dict)  # the server's log lines by level, during the run
    log_samples: list[str] = field(default_factory=list)

    @property
    def socket_errors(self) -> str:
        return f"{self.connect_errors}/{self.read_errors}/{self.write_errors}/{self.timeouts}"


# --- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One uvicorn process in a session of its own (so Ctrl-C in the terminal reaches the bench, which stops it)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], ready_path: str, log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.command = [str(BIN / "uvicorn"), *args, "--host", "127.0.0.1", "--port", str(self.port)]
        self.env = env
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our uvicorn, our arguments
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise BenchError(f"{self.name} exited during start-up:\n{self.log_tail()}")
            try:
                response = httpx.get(self.url + self.ready_path, timeout=2)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise BenchError(f"{self.name} not ready after {READY_TIMEOUT_SECONDS:.0f} s ({last}):\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)  # its own session: the group id is its pid
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def rss_mib(self, field_name: str = "VmRSS") -> float | None:
        """Resident memory of the server process (Linux /proc; `ps` elsewhere, which knows no peak)."""
        if self.process is None:
            return None
        status = Path(f"/proc/{self.process.pid}/status")
        if status.exists():
            match = re.search(rf"^{field_name}:\s+(\d+) kB", status.read_text(), re.MULTILINE)
            return int(match.group(1)) / 1024 if match else None
        if field_name != "VmRSS":
            return None
        ps = shutil.which("ps")
        if ps is None:
            return None
        result = subprocess.run(  # noqa: S603 - fixed executable
            [ps, "-o", "rss=", "-p", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return int(result.stdout.strip()) / 1024 if result.stdout.strip() else None

    def cpu_seconds(self) -> float | None:
        if self.process is None:
            return None
        stat = Path(f"/proc/{self.process.pid}/stat")
        if not stat.exists():
            return None
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def loaded_libraries(self) -> list[str]:
        """Which of uvloop and httptools the running server has loaded (Linux only: /proc/PID/maps)."""
        if self.process is None:
            return []
        maps = Path(f"/proc/{self.process.pid}/maps")
        if not maps.exists():
            return []
        text = maps.read_text()
        return [name for name in ("uvloop", "httptools") if f"/{name}/" in text]


# --- database and Redis ------------------------------------------------------------------------


async def _admin(settings: Settings, statement: str) -> None:
    connection = await asyncpg.connect(_dsn(settings, database="postgres"))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _dsn(settings: Settings, database: str | None = None) -> str:
    url = settings.dbmate_url.split("?", 1)[0]
    return url if database is None else url.rsplit("/", 1)[0] + f"/{database}"


def recreate_database(settings: Settings) -> None:
    """Drop the bench's database and build it again from the migrations, with dbmate (as the tests do)."""
    asyncio.run(_admin(settings, f'DROP DATABASE IF EXISTS "{settings.DB_NAME}" WITH (FORCE)'))
    env = {**os.environ, "DATABASE_URL": settings.dbmate_url}
    for command in ("create", "up"):
        result = subprocess.run(  # noqa: S603 - fixed executable and arguments
            [str(BIN / "dbmate"), "--migrations-dir", "db/migrations", "--no-dump-schema", command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"dbmate {command} failed: {result.stderr.strip() or result.stdout.strip()}")


def drop_database(settings: Settings) -> None:
    asyncio.run(_admin(settings, f'DROP DATABASE IF EXISTS "{settings.DB_NAME}" WITH (FORCE)'))


async def _seed(settings: Settings) -> list[str]:
    connection = await asyncpg.connect(_dsn(settings))
    try:
        for client in (CLIENT_ID, OTHER_CLIENT_ID):
            await connection.execute(
                "INSERT INTO messages (client_id, event, payload, status, created_at, updated_at) "
                "SELECT $1, 'order.created', "
                "jsonb_build_object('order_id', n, 'amount_cents', n * 7 % 10000, 'currency', 'EUR'), "
                "(ARRAY['delivered', 'pending', 'failed'])[1 + n % 3], "
                "now() - make_interval(secs => n), now() - make_interval(secs => n) "
                "FROM generate_series(1, $2) AS n",
                client,
                SEED_ROWS,
            )
        await connection.execute("ANALYZE messages")
        rows = await connection.fetch(
            "SELECT id FROM messages WHERE client_id = $1 ORDER BY random() LIMIT $2", CLIENT_ID, ID_COUNT
        )
        return [str(row["id"]) for row in rows]
    finally:
        await connection.close()


def seed(settings: Settings) -> list[str]:
    """SEED_ROWS messages for the bench's client and as many for another; ID_COUNT of the first, shuffled."""
    return asyncio.run(_seed(settings))


async def _sessions(settings: Settings) -> int | None:
    connection = await asyncpg.connect(_dsn(settings, database="postgres"))  # not counted: another database
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        count = await connection.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", settings.DB_NAME)
        return int(count) if count is not None else None
    finally:
        await connection.close()


def pg_sessions(settings: Settings) -> int | None:
    """Sessions ever opened on the bench's database (PostgreSQL 14+): a pool that churns connections shows here."""
    try:
        return asyncio.run(_sessions(settings))
    except asyncpg.PostgresError:
        return None


def flush_redis(settings: Settings) -> None:
    """Empty the bench's own Redis database: the rate-limit counters and the Celery queue no worker drains."""
    client = Redis.from_url(settings.redis_url)
    try:
        client.flushdb()
    finally:
        client.close()


# --- wrk ---------------------------------------------------------------------------------------


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise BenchError(
            "wrk (the HTTP load generator) is not installed. "
            "Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk."
        )
    return wrk


def wrk_version(wrk: str) -> str:
    result = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    return (result.stdout or result.stderr).splitlines()[0].strip() if (result.stdout or result.stderr) else "?"


def run_wrk(wrk: str, url: str, series: Series, seconds: int, token: str, ids_file: Path) -> dict[str, Any]:
    command = [
        wrk,
        f"-t{min(WRK_THREADS, series.connections)}",
        f"-c{series.connections}",
        f"-d{seconds}s",
        f"--timeout={WRK_TIMEOUT}s",
        "-s",
        str(WRK_SCRIPTS / series.script),
        url,
        "--",
        str(ids_file),
    ]
    result = subprocess.run(  # noqa: S603 - our wrk, our arguments
        command,
        cwd=ROOT,
        env={**os.environ, "BENCH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_RESULT "))
            return parsed
    raise BenchError(f"wrk gave no result (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")


def _log_since(log: Path, offset: int) -> tuple[dict[str, int], list[str]]:
    """Levels and first distinct messages of the server's log lines written after `offset` bytes."""
    levels: Counter[str] = Counter()
    samples: list[str] = []
    with log.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                record = json.loads(line)
                level, message = str(record.get("level", "?")), str(record.get("message", ""))
                if record.get("exception"):  # the exception itself: the traceback's last line
                    message += " - " + str(record["exception"]).strip().splitlines()[-1]
            except json.JSONDecodeError:
                level, message = (line.split(":", 1)[0] if ":" in line else "TEXT"), line
            levels[level] += 1
            sample = f"{level}: {message[:300]}"
            if len(samples) < 3 and sample not in samples:
                samples.append(sample)
    return dict(levels), samples


def measure(wrk: str, server: Server, series: Series, token: str, ids_file: Path, database: Settings) -> Figures:
    run_wrk(wrk, server.url, series, WARMUP, token, ids_file)  # warm-up: connections, pools, caches
    offset = server.log.stat().st_size
    cpu_before, sessions_before = server.cpu_seconds(), pg_sessions(database)
    raw = run_wrk(wrk, server.url, series, DURATION, token, ids_file)
    cpu_after, sessions_after = server.cpu_seconds(), pg_sessions(database)
    levels, samples = _log_since(server.log, offset)
    errors, latency = raw["errors"], raw["latency_us"]
    seconds = raw["duration_us"] / 1e6
    requests = raw["requests"]
    cpu = None
    if cpu_before is not None and cpu_after is not None and requests:
        cpu = (cpu_after - cpu_before) * 1000 / requests
    return Figures(
        requests=requests,
        seconds=round(seconds, 2),
        ok_per_second=round((requests - errors["status"]) / seconds, 1) if seconds else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        non_2xx=errors["status"],
        connect_errors=errors["connect"],
        read_errors=errors["read"],
        write_errors=errors["write"],
        timeouts=errors["timeout"],
        rss_mib=server.rss_mib(),
        cpu_ms_per_request=round(cpu, 3) if cpu is not None else None,
        pg_sessions_opened=None
        if sessions_before is None or sessions_after is None
        else sessions_after - sessions_before,
        log_lines=levels,
        log_samples=samples,
    )


# --- the checks before measuring ---------------------------------------------------------------


def check_answers(server: Server, token: str, message_id: str) -> None:
    """Each request kind of the bench answers as expected, with the project's response shapes."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        one = client.get(f"/api/v1/messages/{message_id}")
        created = client.post("/api/v1/messages", json=POST_BODY)
        page = client.get(f"/api/v1/messages?limit={PAGE_SIZE}")
    problems = []
    for response, status in ((one, 200), (created, 202), (page, 200)):
        if response.status_code != status:
            problems.append(f"{response.request.method} {response.request.url.path}: {response.status_code}")
    if not problems:
        items = page.json().get("items", [])
        if set(one.json()) != MESSAGE_KEYS or set(created.json()) != MESSAGE_KEYS:
            problems.append(f"a message has the keys {sorted(one.json())}, expected {sorted(MESSAGE_KEYS)}")
        if set(page.json()) != {"items", "next_cursor"} or len(items) != PAGE_SIZE:
            problems.append(f"the page is not {{items: [{PAGE_SIZE} messages], next_cursor}}")
        elif not PAGE_ITEM_KEYS <= set(items[0]) <= MESSAGE_KEYS:
            problems.append(f"a page item has the keys {sorted(items[0])}, expected {sorted(PAGE_ITEM_KEYS)}")
    if problems:
        detail = "; ".join(problems)
        raise BenchError(f"{server.name} does not answer the bench's requests as expected: {detail}")


# --- output ------------------------------------------------------------------------------------


def _ratio(project: float, baseline: float) -> str:
    return f"{project / baseline:.2f}x" if baseline else "-"


def _cells(figures: Figures | None) -> list[str]:
    if figures is None:
        return ["-"] * 6
    rss = f"{figures.rss_mib:.0f}" if figures.rss_mib is not None else "?"
    return [
        f"{figures.ok_per_second:.0f}",
        f"{figures.p50_ms:.1f}",
        f"{figures.p99_ms:.1f}" + ("*" if figures.timeouts else ""),
        str(figures.non_2xx),
        figures.socket_errors,
        rss,
    ]


def table(rows: list[tuple[Series, Figures | None, Figures | None]]) -> str:
    header = ["series", "c"]
    for side in ("B", "P"):
        header += [
            f"{side} req/s",
            f"{side} p50",
            f"{side} p99",
            f"{side} non-2xx",
            f"{side} sock c/r/w/t",
            f"{side} RSS",
        ]
    header += ["req/s P/B", "p50 P/B", "p99 P/B"]
    lines = [header]
    for series, base, proj in rows:
        ratios = ["-", "-", "-"]
        if base is not None and proj is not None:
            ratios = [
                _ratio(proj.ok_per_second, base.ok_per_second),
                _ratio(proj.p50_ms, base.p50_ms),
                _ratio(proj.p99_ms, base.p99_ms),
            ]
        lines.append([series.name, str(series.connections), *_cells(base), *_cells(proj), *ratios])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        padded = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([render(lines[0]), separator, *(render(line) for line in lines[1:])])


LEGEND = (
    "B = baseline (bench/baseline.py: Starlette + asyncpg), P = the project's API; c = connections.\n"
    "req/s counts answers below 400 only; p50/p99 in ms; non-2xx = answers of 400 or more (wrk's count);\n"
    "sock = socket errors connect/read/write/timeout; RSS in MiB of the server process after the series;\n"
    f"timeout = an answer slower than {WRK_TIMEOUT} s (wrk --timeout): counted, but left out of p50/p99, which are\n"
    "  then marked *;\n"
    "P/B = project / baseline (req/s: higher is better; latency: lower is better)."
)


# --- the run -----------------------------------------------------------------------------------


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def production_settings(secret: str, database: str, sealing_key: str) -> dict[str, str]:
    """The project's API as deployed, every feature on; only the rate limit is set out of reach."""
    return {
        "APP_ENVIRONMENT": "staging",
        "JWT_SECRET": secret,
        "WEBHOOK_SECRET_KEYS": f"bench:{sealing_key}",
        "DOCS_ENABLED": "false",
        "CORS_ALLOW_ORIGINS": ",".join(CORS_ORIGINS),
        "RATE_LIMIT_PER_MINUTE": "1000000000",
        "LOG_LEVEL": "WARNING",
        "DB_NAME": database,
        "REDIS_DB": str(REDIS_DB),
        "PYTHONUNBUFFERED": "1",
    }


def main() -> int:
    started = time.monotonic()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None  # others' work: the noise to expect
    # Ctrl-C and SIGTERM both end the run through the clean-up below, even where SIGINT was inherited ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        wrk = find_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    base = Settings()
    bench = base.model_copy(update={"DB_NAME": f"{base.DB_NAME}_bench_http", "REDIS_DB": REDIS_DB})
    secret = secrets.token_urlsafe(32)[:40]
    sealing_key = base64.b64encode(secrets.token_bytes(32)).decode()  # outside local and test, one must be set
    overrides = production_settings(secret, bench.DB_NAME, sealing_key)
    # The same values the server reads from its environment (plus the same .env and environment beneath them):
    # a token signed with its secret, its issuer and audience if any, with every scope.
    project_settings = Settings(
        APP_ENVIRONMENT="staging",
        JWT_SECRET=SecretStr(secret),
        WEBHOOK_SECRET_KEYS=SecretStr(overrides["WEBHOOK_SECRET_KEYS"]),
        DOCS_ENABLED=False,
        CORS_ALLOW_ORIGINS=CORS_ORIGINS,
        RATE_LIMIT_PER_MINUTE=int(overrides["RATE_LIMIT_PER_MINUTE"]),
        LOG_LEVEL="WARNING",
        DB_NAME=bench.DB_NAME,
        REDIS_DB=REDIS_DB,
    )
    token = create_access_token(project_settings, CLIENT_ID)
    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    ids_file = workdir / "ids.txt"

    baseline_env = {
        **os.environ,
        "BENCH_DSN": _dsn(bench),
        "BENCH_CLIENT_ID": CLIENT_ID,
        "BENCH_POOL_SIZE": str(BASELINE_POOL),
        "PYTHONUNBUFFERED": "1",
    }
    # entrypoint.sh's `api` command with one worker, and the application factory. Its --loop/--http are
    # uvicorn's `auto`, which picks uvloop and httptools: the image installs uvicorn[standard], as does the lock.
    project_args = ["--factory", "app.main:create_app", "--workers", "1", "--ws", "none", "--proxy-headers"]
    # The same server for the baseline; it has no logging set-up of its own, so uvicorn's access log is
    # switched off here as the project's logging set-up switches it off there.
    baseline_args = ["--factory", "bench.baseline:create_app", "--workers", "1", "--proxy-headers"]
    baseline_args += ["--no-access-log", "--log-level", "warning"]
    servers = [
        Server("baseline", baseline_args, baseline_env, "/health", workdir / "baseline.log"),
        Server("project", project_args, {**os.environ, **overrides}, "/health/ready", workdir / "project.log"),
    ]
    baseline, project = servers

    rows: list[tuple[Series, Figures | None, Figures | None]] = []
    status = 0
    try:
        load = f", load average {load_at_start[0]:.1f} on {os.cpu_count()} CPUs" if load_at_start else ""
        print(f"bench: database {bench.DB_NAME}, Redis db {REDIS_DB}, logs in {workdir}{load}", flush=True)
        recreate_database(bench)
        ids = seed(bench)
        ids_file.write_text("\n".join(ids) + "\n")
        flush_redis(bench)
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
            check_answers(server, token, ids[0])
        libraries = {server.name: server.loaded_libraries() for server in servers}
        loaded = ", ".join(libraries["project"]) or "?"
        print(
            f"bench: baseline on :{baseline.port}, project on :{project.port} ({loaded});"
            f" {len(SERIES)} series, {WARMUP} s warm-up + {DURATION} s each, wrk -t{WRK_THREADS}",
            flush=True,
        )
        for series in SERIES:
            measured: dict[str, Figures | None] = {}
            for server in servers:
                if not server.alive():
                    print(f"bench: {server.name} is not running any more; skipped", file=sys.stderr)
                    measured[server.name] = None
                    continue
                measured[server.name] = figures = measure(wrk, server, series, token, ids_file, bench)
                print(
                    f"  {series.name} c{series.connections} {server.name}: {figures.ok_per_second:.0f} req/s,"
                    f" p99 {figures.p99_ms:.1f} ms, non-2xx {figures.non_2xx}, sock {figures.socket_errors},"
                    f" {figures.cpu_ms_per_request} ms CPU/request, {figures.pg_sessions_opened} new PG sessions"
                    + (f", log {figures.log_lines}" if figures.log_lines else ""),
                    flush=True,
                )
            rows.append((series, measured["baseline"], measured["project"]))
        peaks = {server.name: server.rss_mib("VmHWM") for server in servers}
        elapsed = time.monotonic() - started

        print()
        print(table(rows))
        print(LEGEND)
        print(f"Peak RSS: baseline {peaks['baseline'] or 0:.0f} MiB, project {peaks['project'] or 0:.0f} MiB.")
        for series, base_figures, proj_figures in rows:
            for name, logged in (("baseline", base_figures), ("project", proj_figures)):
                if logged is not None and logged.log_samples:
                    print(f"{name} log during {series.name} c{series.connections}: {logged.log_lines}")
                    for sample in logged.log_samples:
                        print(f"    {sample}")
        report = {
            "started": started_at,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "load_average_at_start": load_at_start,
            },
            "wrk": {"version": wrk_version(wrk), "threads": WRK_THREADS, "timeout_s": WRK_TIMEOUT},
            "seconds": {"warmup": WARMUP, "measured": DURATION, "whole_run": round(elapsed, 1)},
            "servers": {
                server.name: {"command": server.command[1:-4], "libraries": libraries[server.name]}
                for server in servers
            },
            "baseline_pool": BASELINE_POOL,
            "peak_rss_mib": peaks,
            "rows": [
                {
                    "series": series.name,
                    "connections": series.connections,
                    "baseline": asdict(b) if b else None,
                    "project": asdict(p) if p else None,
                    "ratio_project_to_baseline": {
                        "req_per_s": round(p.ok_per_second / b.ok_per_second, 3) if b.ok_per_second else None,
                        "p50": round(p.p50_ms / b.p50_ms, 3) if b.p50_ms else None,
                        "p99": round(p.p99_ms / b.p99_ms, 3) if b.p99_ms else None,
                    }
                    if b and p
                    else None,
                }
                for series, b, p in rows
            ],
        }
        JSON_PATH.write_text(json.dumps(report, indent=2) + "\n")
        print(f"Figures as JSON: {JSON_PATH}; whole run {elapsed:.0f} s.")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        status = 130
    finally:
        for server in servers:
            server.stop()
        try:
            flush_redis(bench)
            if os.environ.get("BENCH_KEEP_DB") != "1":
                drop_database(bench)
        except Exception as exc:  # clean-up must not hide the run's own outcome
            print(f"bench: clean-up incomplete: {exc!r}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
