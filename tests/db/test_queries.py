"""The list queries the API runs are served by their indexes, not by scanning whole tables.

The SQL is captured exactly as the repositories send it (statement and bound parameters, via a
cursor event), then EXPLAINed with the same parameters against a realistic amount of data.
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.core.time import utcnow
from app.db.base_table import BaseTable
from app.db.delivery.table import DeliveriesTable
from app.db.message.table import MessagesTable
from app.db.webhook.table import WebhooksTable

CLIENTS = 20
MESSAGES_PER_CLIENT = 200
EVENTS = ["order.created", "order.paid", "order.shipped", "order.refunded", "customer.created"]
STATUSES = ["pending", "delivering", "delivered", "failed", "partially_failed"]
INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


@dataclass(frozen=True)
class Captured:
    statement: str
    parameters: Any


@contextmanager
def capture_sql(connection: AsyncConnection) -> Iterator[list[Captured]]:
    """Every statement sent on `connection` while the block runs, with its driver-level parameters."""
    captured: list[Captured] = []

    def record(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append(Captured(statement, parameters))

    sync_connection = connection.sync_connection
    assert sync_connection is not None
    event.listen(sync_connection, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        event.remove(sync_connection, "before_cursor_execute", record)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _nodes(child)


async def explain_page(
    session: AsyncSession, table: BaseTable[Any], cursor: str | None, **filters: Any
) -> list[dict[str, Any]]:
    """The plan nodes of the query `table.page(...)` runs, as PostgreSQL would execute it."""
    connection = await session.connection()
    with capture_sql(connection) as captured:
        await table.page(20, cursor, **filters)
    (query,) = captured
    return await explain(connection, query)


async def explain(connection: AsyncConnection, query: Captured) -> list[dict[str, Any]]:
    """The plan nodes of a captured query, as PostgreSQL would execute it."""
    assert query.statement.lstrip().upper().startswith("SELECT")
    result = await connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + query.statement, query.parameters)
    document = result.scalar_one()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return list(_nodes(plan))


def assert_served_by(nodes: list[dict[str, Any]], table: str, *indexes: str) -> None:
    """`table` is read through one of `indexes`, never scanned whole."""
    summary = [(node["Node Type"], node.get("Relation Name"), node.get("Index Name")) for node in nodes]
    assert not any(node["Node Type"] == "Seq Scan" and node.get("Relation Name") == table for node in nodes), summary
    assert any(node["Node Type"] in INDEX_SCANS and node.get("Index Name") in indexes for node in nodes), summary
    # Rows come out of the index in page order: no sort of the whole match.
    if any(node["Node Type"] in ("Index Scan", "Index Only Scan") for node in nodes):
        assert not any(node["Node Type"] == "Sort" for node in nodes), summary


async def seed_webhooks(session: AsyncSession, total: int) -> None:
    """`total` webhooks spread over CLIENTS clients, one in ten of them deleted."""
    await session.execute(
        text(
            """
            INSERT INTO webhooks (client_id, url, events, secret_key_id, secret_ciphertext, created_at, updated_at,
                                  deleted_at)
            SELECT 'client-' || (n % CAST(:clients AS int)), 'https://example.com/' || n, ARRAY['order.created'],
                   'unsealed', 'whsec_x', now() - n * interval '1 second', now(), CASE WHEN n % 10 = 0 THEN now() END
            FROM generate_series(1, CAST(:total AS int)) AS n
            """
        ),
        {"clients": CLIENTS, "total": total},
    )
    await session.execute(text("ANALYZE webhooks"))


async def seed_messages(session: AsyncSession) -> None:
    """MESSAGES_PER_CLIENT messages for each of CLIENTS clients, every client with every event and status."""
    await session.execute(
        text(
            """
            INSERT INTO messages (client_id, event, payload, status, created_at, updated_at)
            SELECT 'client-' || (n % CAST(:clients AS int)),
                   (CAST(:events AS text[]))[1 + (n / :clients) % 5],
                   '{}'::jsonb,
                   (CAST(:statuses AS text[]))[1 + (n / (5 * :clients)) % 5],
                   now() - n * interval '1 second',
                   now()
            FROM generate_series(1, CAST(:total AS int)) AS n
            """
        ),
        {"clients": CLIENTS, "total": CLIENTS * MESSAGES_PER_CLIENT, "events": EVENTS, "statuses": STATUSES},
    )
    await session.execute(text("ANALYZE messages"))


async def seed_deliveries(session: AsyncSession) -> uuid.UUID:
    """An attempt for every message, and a message that went to 100 webhooks (3 attempts each) spread over
    the same hours as the rest; returns that message's id."""
    await seed_webhooks(session, 100)
    await seed_messages(session)
    message_id: uuid.UUID = (
        await session.execute(text("SELECT id FROM messages WHERE client_id = 'client-3' LIMIT 1"))
    ).scalar_one()
    await session.execute(
        text(
            """
            INSERT INTO deliveries (message_id, webhook_id, attempt, status, duration_ms, created_at)
            SELECT m.id, w.id, 10, 'failed', 10, m.created_at + interval '1 second'
            FROM messages AS m, (SELECT id FROM webhooks LIMIT 1) AS w
            UNION ALL
            SELECT :message_id, w.id, a, 'failed', 10, now() - (w.n * 60 + a) * interval '1 second'
            FROM (SELECT id, row_number() OVER () AS n FROM webhooks) AS w, generate_series(1, 3) AS a
            """
        ),
        {"message_id": message_id},
    )
    await session.execute(text("ANALYZE deliveries"))
    return message_id


async def _cursor(table: BaseTable[Any], **filters: Any) -> str:
    """A real next_cursor from the middle of the list."""
    page = await table.page(5, **filters)
    assert page.next_cursor is not None
    return page.next_cursor


EVENT_INDEX, STATUS_INDEX = "messages_client_event_page_idx", "messages_client_status_page_idx"
MESSAGE_FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"messages_client_page_idx"}),
    ({"event": "order.paid"}, {EVENT_INDEX}),
    ({"status": "failed"}, {STATUS_INDEX}),
    # Both filters: either index narrows it down; which one wins depends on the statistics.
    ({"event": "order.paid", "status": "failed"}, {EVENT_INDEX, STATUS_INDEX}),
]


async def test_message_pages_use_their_indexes(db_session: AsyncSession) -> None:
    await seed_messages(db_session)
    table = MessagesTable(db_session)
    for filters, indexes in MESSAGE_FILTERS:
        cursor = await _cursor(table, client_id="client-3", **filters)
        for page_cursor in (None, cursor):
            nodes = await explain_page(db_session, table, page_cursor, client_id="client-3", **filters)
            assert_served_by(nodes, "messages", *indexes)


async def test_delivery_pages_use_their_index(db_session: AsyncSession) -> None:
    message_id = await seed_deliveries(db_session)
    table = DeliveriesTable(db_session)
    cursor = await _cursor(table, message_id=message_id)
    for page_cursor in (None, cursor):
        nodes = await explain_page(db_session, table, page_cursor, message_id=message_id)
        assert_served_by(nodes, "deliveries", "deliveries_message_page_idx")


async def test_webhook_pages_use_their_index(db_session: AsyncSession) -> None:
    await seed_webhooks(db_session, CLIENTS * MESSAGES_PER_CLIENT)
    table = WebhooksTable(db_session)
    cursor = await _cursor(table, client_id="client-3")
    for page_cursor in (None, cursor):
        nodes = await explain_page(db_session, table, page_cursor, client_id="client-3")
        assert_served_by(nodes, "webhooks", "webhooks_client_page_idx")


async def test_overdue_retries_read_the_partial_index_alone(db_session: AsyncSession) -> None:
    """Housekeeping's lost-retry query: only a webhook's latest attempt carries next_attempt_at, so no
    anti-join against later attempts; just the small partial index, already in next_attempt_at order."""
    message_id = await seed_deliveries(db_session)
    # A retry is due after the latest attempt to each webhook (as DeliveryService leaves it: only there).
    scheduled = await db_session.execute(
        text(
            """
            UPDATE deliveries AS d SET next_attempt_at = now() - interval '1 hour'
            WHERE message_id = :message_id
              AND NOT EXISTS (SELECT FROM deliveries AS later
                              WHERE later.message_id = d.message_id AND later.webhook_id = d.webhook_id
                                AND later.attempt > d.attempt)
            RETURNING id
            """
        ),
        {"message_id": message_id},
    )
    due = set(scheduled.scalars().all())
    assert len(due) == 100
    await db_session.execute(text("ANALYZE deliveries"))
    table = DeliveriesTable(db_session)
    connection = await db_session.connection()
    with capture_sql(connection) as captured:
        overdue = await table.overdue_retries(utcnow(), 500)
    assert {d.id for d in overdue} == due
    (query,) = captured

    nodes = await explain(connection, query)

    summary = [(node["Node Type"], node.get("Relation Name"), node.get("Index Name")) for node in nodes]
    reads = [node for node in nodes if node.get("Relation Name") == "deliveries"]
    assert [(node["Node Type"], node.get("Index Name")) for node in reads] == [
        ("Index Scan", "deliveries_next_attempt_idx")
    ], summary
    assert not any(node["Node Type"] == "Sort" for node in nodes), summary


async def test_the_fan_out_finds_a_clients_webhooks_through_an_index(db_session: AsyncSession) -> None:
    await seed_webhooks(db_session, 5000)
    connection = await db_session.connection()
    with capture_sql(connection) as captured:
        await WebhooksTable(db_session).subscribed("client-3", "order.created")
    (query,) = captured

    nodes = await explain(connection, query)

    assert_served_by(nodes, "webhooks", "webhooks_client_page_idx")
