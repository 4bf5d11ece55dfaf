"""The migrations the code ships, read from db/migrations (dbmate names them `<version>_<name>.sql`)."""

from functools import lru_cache
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "db" / "migrations"


@lru_cache
def shipped_migration_versions(directory: Path = MIGRATIONS_DIR) -> frozenset[str]:
    return frozenset(path.name.split("_", 1)[0] for path in directory.glob("*.sql"))
