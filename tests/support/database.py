"""Test databases: one migrated template, cloned per pytest-xdist worker."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from app.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DBMATE = str(Path(sys.executable).parent / "dbmate")


def dbmate(settings: Settings, *args: str, migrations: Path = ROOT / "db" / "migrations") -> None:
    """dbmate with `args` against the database of `settings` (its URL as the app builds it)."""
    env = {**os.environ, "DATABASE_URL": settings.dbmate_url}
    subprocess.run(  # noqa: S603 - fixed executable, arguments from the test suite
        [DBMATE, "--migrations-dir", str(migrations), "--no-dump-schema", *args],
        check=True,
        env=env,
        capture_output=True,
        cwd=ROOT,
    )


async def _admin(settings: Settings, *statements: str) -> None:
    password = settings.DB_PASSWORD.get_secret_value() or None
    connection = await asyncpg.connect(
        host=settings.DB_HOST, port=settings.DB_PORT, user=settings.DB_USERNAME, password=password, database="postgres"
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def recreate_migrated(settings: Settings) -> None:
    """Drop the database named by `settings` and build it again from the migrations."""
    asyncio.run(_admin(settings, f'DROP DATABASE IF EXISTS "{settings.DB_NAME}" WITH (FORCE)'))
    dbmate(settings, "create")
    dbmate(settings, "up")


def clone(template: str, settings: Settings) -> None:
    """CREATE DATABASE ... TEMPLATE: a full copy in milliseconds, no migrations to run."""
    asyncio.run(
        _admin(
            settings,
            f'DROP DATABASE IF EXISTS "{settings.DB_NAME}" WITH (FORCE)',
            f'CREATE DATABASE "{settings.DB_NAME}" TEMPLATE "{template}"',
        )
    )


def drop(settings: Settings) -> None:
    asyncio.run(_admin(settings, f'DROP DATABASE IF EXISTS "{settings.DB_NAME}" WITH (FORCE)'))


@contextmanager
def scratch_database(settings: Settings, suffix: str) -> Iterator[Settings]:
    """An empty database of its own (created, not migrated), dropped afterwards."""
    scratch = settings.model_copy(update={"DB_NAME": f"{settings.DB_NAME}_{suffix}"})
    drop(scratch)
    dbmate(scratch, "create")
    try:
        yield scratch
    finally:
        drop(scratch)
