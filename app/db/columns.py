"""Column helpers shared by the SQLModel table classes, so every table spells timestamps the same way."""

from typing import Any

from sqlalchemy import Column, DateTime, text


def timestamptz(*, nullable: bool = False, default_now: bool = True) -> Any:
    """A TIMESTAMPTZ column; the database default keeps raw SQL inserts honest too."""
    server_default = text("now()") if default_now else None
    return Column(DateTime(timezone=True), nullable=nullable, server_default=server_default)
