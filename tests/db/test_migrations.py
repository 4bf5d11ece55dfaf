"""Every migration goes up, down and up again, on a scratch database of its own."""

from collections.abc import Iterator

import asyncpg
import pytest

from app.core.config import Settings
from app.db.migrations import MIGRATIONS_DIR
from tests.support.database import dbmate, scratch_database


@pytest.fixture
def scratch(settings: Settings) -> Iterator[Settings]:
    with scratch_database(settings, "migrations") as scratch_settings:
        yield scratch_settings


async def _schema_snapshot(settings: Settings) -> list[tuple[str, str, str, str]]:
    connection = await asyncpg.connect(
        host=settings.DB_HOST, port=settings.DB_PORT, user=settings.DB_USERNAME, database=settings.DB_NAME
    )
    try:
        rows = await connection.fetch(
            """
            SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
            WHERE table_schema = 'public' AND table_name <> 'schema_migrations'
            UNION ALL
            SELECT tablename, indexname, indexdef, '' FROM pg_indexes
            WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
            ORDER BY 1, 2
            """
        )
    finally:
        await connection.close()
    return [tuple(row) for row in rows]


async def test_every_migration_goes_up_down_and_up_again(scratch: Settings) -> None:
    migrations = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert migrations
    dbmate(scratch, "up")
    fully_migrated = await _schema_snapshot(scratch)
    assert fully_migrated
    previous = fully_migrated
    for migration in reversed(migrations):
        dbmate(scratch, "rollback")
        current = await _schema_snapshot(scratch)
        assert current != previous, f"the down of {migration.name} changed nothing"
        previous = current
    assert previous == [], "the down migrations left objects behind"
    dbmate(scratch, "up")
    assert await _schema_snapshot(scratch) == fully_migrated
