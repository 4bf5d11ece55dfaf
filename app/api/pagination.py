"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out."""

import uuid
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field, field_validator

from app.base.cursor import decode_cursor

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
CURSOR_MAX_LENGTH = 512
# The value types of BaseTable.page_order's default, ("created_at", "id").
DEFAULT_PAGE_KEY_TYPES: tuple[type, ...] = (datetime, uuid.UUID)


def check_cursor(value: str) -> str:
    """A `next_cursor` as BaseTable.page() writes them for its default (created_at, id) keyset.

    Every list of this API pages by that key, so a malformed cursor is rejected here, as a field error
    of the request (422 with `errors`); the repository still decodes it against the table's columns.
    """
    decode_cursor(value, DEFAULT_PAGE_KEY_TYPES)
    return value


class PageParams(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(
        default=None, max_length=CURSOR_MAX_LENGTH, description="`next_cursor` of the previous page"
    )

    @field_validator("cursor")
    @classmethod
    def _cursor(cls, value: str | None) -> str | None:
        return None if value is None else check_cursor(value)


PageQuery = Annotated[PageParams, Query()]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
