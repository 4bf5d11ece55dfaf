"""The bench's baseline: a bare Starlette + asyncpg app on the project's `messages` table.

What a plain fast Python service does for the same three requests: one SQL statement per request, an
asyncpg pool sized for the load, no auth, no middleware, no ORM, no validation library. It answers the
same paths with JSON of the same shape as the project's API, so the same wrk scripts drive both and the
project's figures can be read as a ratio to this floor (see docs/decisions.md).

Served by the harness (bench/harness.py) with the same uvicorn command as the project:

    uvicorn --factory bench.baseline:create_app

Settings (environment): BENCH_DSN (a postgres:// URL), BENCH_CLIENT_ID (whose messages it serves, the
token's `sub` on the project's side), BENCH_POOL_SIZE (connections, default 32).
"""

import base64
import json
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

COLUMNS = "id, event, payload, status, created_at, updated_at"
GET_ONE = f"SELECT {COLUMNS} FROM messages WHERE id = $1 AND client_id = $2"  # noqa: S608 - constant
INSERT = f"INSERT INTO messages (client_id, event, payload) VALUES ($1, $2, $3) RETURNING {COLUMNS}"  # noqa: S608
# limit + 1 rows, as the project's keyset page does, to know whether there is a next page.
PAGE = (
    f"SELECT {COLUMNS} FROM messages WHERE client_id = $1 "  # noqa: S608 - constant
    "ORDER BY created_at DESC, id DESC LIMIT $2"
)
MAX_PAGE_SIZE = 100


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _message(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "event": row["event"],
        "payload": row["payload"],
        "status": row["status"],
        "created_at": _timestamp(row["created_at"]),
        "updated_at": _timestamp(row["updated_at"]),
    }


def _cursor(row: Mapping[str, Any]) -> str:
    raw = json.dumps([row["created_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=status)


async def _init_connection(connection: Any) -> None:
    await connection.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def create_app() -> Starlette:
    dsn = os.environ["BENCH_DSN"]
    client_id = os.environ["BENCH_CLIENT_ID"]
    pool_size = int(os.environ.get("BENCH_POOL_SIZE", "32"))
    pool: Any = None

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size, init=_init_connection)
        try:
            yield
        finally:
            await pool.close()

    async def health(_: Request) -> Response:
        await pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    async def get_message(request: Request) -> Response:
        try:
            message_id = uuid.UUID(request.path_params["message_id"])
        except ValueError:
            return _problem(422, "message_id is not a UUID")
        row = await pool.fetchrow(GET_ONE, message_id, client_id)
        if row is None:
            return _problem(404, "not found")
        return JSONResponse(_message(row))

    async def create_message(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _problem(422, "body is not JSON")
        if not (
            isinstance(body, dict) and isinstance(body.get("event"), str) and isinstance(body.get("payload"), dict)
        ):
            return _problem(422, "expected {event: string, payload: object}")
        row = await pool.fetchrow(INSERT, client_id, body["event"], body["payload"])
        return JSONResponse(_message(row), status_code=202)

    async def list_messages(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "20"))
        except ValueError:
            return _problem(422, "limit is not an integer")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            return _problem(422, f"limit must be between 1 and {MAX_PAGE_SIZE}")
        rows = await pool.fetch(PAGE, client_id, limit + 1)
        items = rows[:limit]
        next_cursor = _cursor(items[-1]) if len(rows) > limit else None
        return JSONResponse({"items": [_message(row) for row in items], "next_cursor": next_cursor})

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/api/v1/messages", create_message, methods=["POST"]),
            Route("/api/v1/messages", list_messages, methods=["GET"]),
            Route("/api/v1/messages/{message_id}", get_message, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
