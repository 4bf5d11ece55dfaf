"""Benchmarks (`make bench`): request latency through the full stack and keyset paging at depth.

Runs against a database of its own (`<DB_NAME>_bench`, rebuilt from the migrations) and the real Redis.
Prints one line per benchmark: operations, mean and p95 latency, throughput, and peak RSS at the end.
"""

import asyncio
import resource
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import text

from app.api.messaging.points import get_delivery_queue
from app.core.config import Settings
from app.core.security import create_access_token
from app.db.engine import create_engine, create_session_factory
from app.db.message.table import MessagesTable
from app.main import create_app
from tests.support.database import recreate_migrated

REQUESTS = 500
ROWS = 20_000


class _NoQueue:
    """Delivery is the worker's cost, not the request's: measure the API alone."""

    async def fan_out(self, *_: object) -> None:
        return None

    async def retry(self, *_: object) -> None:
        return None


async def _measure(name: str, count: int, operation: Callable[[int], Awaitable[None]]) -> None:
    timings = []
    started = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        await operation(i)
        timings.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    p95 = statistics.quantiles(timings, n=20)[18]
    print(
        f"{name:<34} {count:>6} ops  mean {statistics.fmean(timings):7.2f} ms"
        f"  p95 {p95:7.2f} ms  {count / elapsed:8.0f} ops/s"
    )


def bench_settings() -> Settings:
    return Settings(
        DB_NAME=f"{Settings().DB_NAME}_bench",
        LOG_LEVEL="WARNING",  # one access-log line per request would swamp the figures
        RATE_LIMIT_PER_MINUTE=1_000_000,  # measure the API, not the limiter's 429s
    )


async def main(settings: Settings) -> None:
    app = create_app(settings)
    app.dependency_overrides[get_delivery_queue] = _NoQueue
    headers = {"Authorization": f"Bearer {create_access_token(settings, 'bench')}"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            async def post_message(i: int) -> None:
                body = {"event": "order.created", "payload": {"n": i}}
                response = await client.post("/api/v1/messages", json=body, headers=headers)
                assert response.status_code == 202, response.text

            async def list_messages(_: int) -> None:
                response = await client.get("/api/v1/messages?limit=50", headers=headers)
                assert response.status_code == 200, response.text

            async def health(_: int) -> None:
                assert (await client.get("/health/live")).status_code == 200

            await _measure("GET /health/live", REQUESTS, health)
            await _measure("POST /api/v1/messages", REQUESTS, post_message)
            await _measure("GET /api/v1/messages?limit=50", REQUESTS, list_messages)

    engine = create_engine(settings)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO messages (client_id, event, payload, created_at) "
                "SELECT 'deep', 'order.created', '{}'::jsonb, now() - make_interval(secs => n) "
                "FROM generate_series(1, :rows) AS n"
            ),
            {"rows": ROWS},
        )
        await connection.execute(text("ANALYZE messages"))
    async with create_session_factory(engine)() as session:
        table = MessagesTable(session)
        cursor: str | None = None

        async def next_page(_: int) -> None:
            nonlocal cursor
            page = await table.page(50, cursor, client_id="deep")
            cursor = page.next_cursor

        await _measure(f"keyset page of 50, {ROWS} rows deep", ROWS // 50, next_page)
    await engine.dispose()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    settings = bench_settings()
    recreate_migrated(settings)
    asyncio.run(main(settings))
