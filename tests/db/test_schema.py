"""The SQLModel classes describe exactly the schema the migrations build.

Generic on purpose: a new entity is covered as soon as its model is imported in app/db/models.py.
"""

from typing import Any

from sqlalchemy import Connection, MetaData, inspect
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

import app.db.models  # noqa: F401 - registers every table in SQLModel.metadata

DBMATE_TABLES = {"schema_migrations"}
DIALECT = PGDialect()  # type: ignore[no-untyped-call]

Columns = dict[str, tuple[str, bool]]


def _model_schema(metadata: MetaData) -> dict[str, Columns]:
    return {
        table.name: {c.name: (c.type.compile(dialect=DIALECT), bool(c.nullable)) for c in table.columns}
        for table in metadata.tables.values()
    }


def _database_schema(connection: Connection) -> dict[str, Columns]:
    inspector = inspect(connection)
    schema: dict[str, Columns] = {}
    for name in inspector.get_table_names():
        if name in DBMATE_TABLES:
            continue
        columns: list[Any] = inspector.get_columns(name)
        schema[name] = {c["name"]: (c["type"].compile(dialect=DIALECT), bool(c["nullable"])) for c in columns}
    return schema


async def test_models_match_the_migrated_schema(db_session: AsyncSession) -> None:
    connection = await db_session.connection()
    database = await connection.run_sync(_database_schema)
    models = _model_schema(SQLModel.metadata)
    assert models, "no models registered"
    assert sorted(database) == sorted(models), "tables differ between migrations and models"
    for table, columns in models.items():
        assert database[table] == columns, f"columns of {table} differ (name: (type, nullable))"
