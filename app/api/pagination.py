"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out.

The cursor is decoded in one place, BaseTable.page(): a malformed one is a 422 naming `cursor`.
"""

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from app.db.base_table import Page
from app.db.cursor import KEYSET_CURSOR_PATTERN

ItemT = TypeVar("ItemT", bound=BaseModel)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageParams(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    # The pattern is the whole rule: any cursor of this shape is a position in the list (app/db/cursor.py).
    cursor: str | None = Field(
        default=None, pattern=KEYSET_CURSOR_PATTERN, description="`next_cursor` of the previous page"
    )


PageQuery = Annotated[PageParams, Query()]


class PageOut(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = Field(
        pattern=KEYSET_CURSOR_PATTERN, description="Pass as `cursor` for the next page; null on the last page."
    )


def page_out(page: Page[Any], item: type[ItemT]) -> PageOut[ItemT]:
    """A repository page as the API answers it, each row read into `item`."""
    return PageOut[ItemT](items=[item.model_validate(row) for row in page.items], next_cursor=page.next_cursor)
