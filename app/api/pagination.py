"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out.

The cursor is decoded in one place, BaseTable.page(): a malformed one is a 422 naming `cursor`.
"""

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from app.db.base_table import Page

ItemT = TypeVar("ItemT", bound=BaseModel)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
CURSOR_MAX_LENGTH = 512


class PageParams(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(
        default=None, max_length=CURSOR_MAX_LENGTH, description="`next_cursor` of the previous page"
    )


PageQuery = Annotated[PageParams, Query()]


class PageOut(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


def page_out(page: Page[Any], item: type[ItemT]) -> PageOut[ItemT]:
    """A repository page as the API answers it, each row read into `item`."""
    return PageOut[ItemT](items=[item.model_validate(row) for row in page.items], next_cursor=page.next_cursor)
