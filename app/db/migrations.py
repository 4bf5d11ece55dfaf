"""The newest migration version the code ships, read from db/migrations (dbmate file names)."""

from functools import lru_cache
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db" / "migrations"


@lru_cache
def newest_migration_version(directory: Path = MIGRATIONS_DIR) -> str | None:
    versions = [path.name.split("_", 1)[0] for path in directory.glob("*.sql")]
    return max(versions, default=None)
