"""Recording the SQL an engine sends."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def recorded_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement `engine` sends while the block runs, in order."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])  # (connection, cursor, statement, parameters, context, executemany)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
