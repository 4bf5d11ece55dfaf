"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out."""

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field, field_validator

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
CURSOR_MAX_LENGTH = 512


def check_cursor(value: str) -> str:
    """A `next_cursor` as BaseTable.page() writes them: base64url JSON of the (created_at, id) keyset.

    Every list of this API pages by that key, so a malformed cursor is rejected here, as a field error
    of the request (422 with `errors`); the repository still decodes it against the table's columns.
    """
    try:
        keys = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if not isinstance(keys, list) or len(keys) != 2 or not all(isinstance(key, str) for key in keys):
            raise ValueError("wrong shape")
        if datetime.fromisoformat(keys[0]).tzinfo is None:
            raise ValueError("naive timestamp")
        uuid.UUID(keys[1])
    except (ValueError, binascii.Error):  # JSONDecodeError and UnicodeDecodeError are ValueErrors too
        raise ValueError("not a valid cursor; pass the next_cursor of a previous page") from None
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
