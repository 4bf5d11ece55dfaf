"""Every migration goes up, down and up again, on a scratch database of its own."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

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


async def test_a_migration_gives_up_on_a_lock_after_the_lock_timeout(scratch: Settings, tmp_path: Path) -> None:
    # Waiting for its lock, an ALTER TABLE would queue every later query on the table behind it: the
    # running service would stall for as long as the migration waits.
    (tmp_path / "20000101000000_add_column.sql").write_text(
        "-- migrate:up\nALTER TABLE probe ADD COLUMN extra int;\n"
        "-- migrate:down\nALTER TABLE probe DROP COLUMN extra;\n"
    )
    quick = scratch.model_copy(update={"DB_MIGRATION_LOCK_TIMEOUT_SECONDS": 0.3})
    holder = await asyncpg.connect(
        host=scratch.DB_HOST, port=scratch.DB_PORT, user=scratch.DB_USERNAME, database=scratch.DB_NAME
    )
    try:
        await holder.execute("CREATE TABLE probe (id int)")
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT * FROM probe")  # a reader holds ACCESS SHARE until it commits
        started = time.perf_counter()
        with pytest.raises(subprocess.CalledProcessError) as failed:
            dbmate(quick, "up", migrations=tmp_path)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
        dbmate(quick, "up", migrations=tmp_path)  # run again once the lock is free: it goes through
    finally:
        await holder.close()

    assert b"lock timeout" in failed.value.stderr + failed.value.stdout
    assert elapsed < 5, f"the migration waited {elapsed:.1f}s"
