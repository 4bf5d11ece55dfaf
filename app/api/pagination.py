"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out."""

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PageParams(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=512, description="`next_cursor` of the previous page")


PageQuery = Annotated[PageParams, Query()]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
