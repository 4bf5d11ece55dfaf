"""What every domain shares (`make domain` uses each): storable text, keyset pages, timestamp columns."""

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import DateTime
from sqlmodel import SQLModel

from app.api.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams, page_out
from app.api.validation import StorableText, check_text
from app.db.base_table import Page
from app.db.columns import timestamptz


class Named(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from rows, as a domain's response models are

    name: StorableText


class Row(SQLModel):
    name: str


def test_storable_text_is_accepted_as_it_is() -> None:
    assert check_text("naïve café ✓") == "naïve café ✓"
    assert Named(name="ok").name == "ok"


@pytest.mark.parametrize(("value", "message"), [("a\x00b", "NUL character"), ("a\ud800b", "unpaired surrogate")])
def test_text_postgresql_cannot_store_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Named(name=value)


def test_page_parameters_are_bounded() -> None:
    assert PageParams().limit == DEFAULT_PAGE_SIZE
    with pytest.raises(ValidationError):
        PageParams(limit=MAX_PAGE_SIZE + 1)
    with pytest.raises(ValidationError):
        PageParams(limit=1, cursor="not a cursor!")


def test_a_page_is_answered_with_its_items_read_into_the_response_model() -> None:
    page = page_out(Page(items=[Row(name="a"), Row(name="b")], next_cursor=None), Named)

    assert [item.name for item in page.items] == ["a", "b"]
    assert page.next_cursor is None


@pytest.mark.parametrize(("nullable", "default_now"), [(False, True), (True, False)])
def test_timestamp_columns_are_timezone_aware(nullable: bool, default_now: bool) -> None:
    column = timestamptz(nullable=nullable, default_now=default_now)

    assert isinstance(column.type, DateTime)
    assert column.type.timezone
    assert column.nullable is nullable
    assert (column.server_default is not None) is default_now
