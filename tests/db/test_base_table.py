"""BaseTable's whole contract, against the real database, on a table that exists only in the test."""

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Column, Computed, DateTime, Identity, Integer, Text, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, col

from app.core.exceptions import ValidationFailedError
from app.core.time import utcnow
from app.db.base_table import BaseTable


class _TestOnly(SQLModel, registry=registry()):
    """A separate registry keeps these tables out of the application metadata."""


class Widget(_TestOnly, table=True):
    __tablename__ = "test_widgets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False))
    colour: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))
    deleted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Gadget(_TestOnly, table=True):
    __tablename__ = "test_gadgets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False))


class Badge(_TestOnly, table=True):
    """A value the database computes: the one kind of column a write must read back."""

    __tablename__ = "test_badges"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False))
    shout: str | None = Field(default=None, sa_column=Column(Text, Computed("upper(name)")))


class Ticket(_TestOnly, table=True):
    """Values the database fills in on insert: a server default and an identity column."""

    __tablename__ = "test_tickets"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    number: int | None = Field(default=None, sa_column=Column(Integer, Identity(), nullable=False))
    issued_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=text("now()"), nullable=False)
    )
    note: str | None = Field(default=None, sa_column=Column(Text))


class TicketsTable(BaseTable[Ticket]):
    model = Ticket


class BadgesTable(BaseTable[Badge]):
    model = Badge


class WidgetsTable(BaseTable[Widget]):
    model = Widget


class GadgetsTable(BaseTable[Gadget]):
    model = Gadget


async def _create_test_tables(session: AsyncSession) -> None:
    # On the outer transaction, not the session's savepoint; DDL is transactional in PostgreSQL,
    # so the tables vanish with the test's final rollback.
    connection = session.bind
    assert isinstance(connection, AsyncConnection)
    await connection.run_sync(_TestOnly.metadata.create_all)


@pytest.fixture
async def widgets(db_session: AsyncSession) -> WidgetsTable:
    await _create_test_tables(db_session)
    return WidgetsTable(db_session)


async def _insert(table: WidgetsTable, count: int, colour: str | None = None) -> list[Widget]:
    base = utcnow()
    rows = []
    for i in range(count):
        created = base - timedelta(seconds=i)
        rows.append(await table.insert_model(Widget(name=f"w{i}", colour=colour, created_at=created)))
    return rows


def test_each_table_names_its_model(db_session: AsyncSession) -> None:
    assert WidgetsTable(db_session).model is Widget
    assert GadgetsTable(db_session).model is Gadget


def test_a_table_without_a_model_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="must name its table class"):

        class NamelessTable(BaseTable[Widget]):
            pass


async def test_insert_and_first_or_default(widgets: WidgetsTable) -> None:
    widget = await widgets.insert_model(Widget(name="a"))
    found = await widgets.first_or_default(widget.id)
    assert found is not None
    assert found.name == "a"
    assert found.created_at.tzinfo is not None
    assert found.updated_at == found.created_at
    assert await widgets.first_or_default(uuid.uuid4()) is None


async def test_first_by_filters_by_keyword_and_by_expression(widgets: WidgetsTable) -> None:
    await widgets.insert_model(Widget(name="a", colour="red"))
    await widgets.insert_model(Widget(name="b"))
    red = await widgets.first_by(colour="red")
    assert red is not None
    assert red.name == "a"
    uncoloured = await widgets.first_by(col(Widget.colour).is_(None))
    assert uncoloured is not None
    assert uncoloured.name == "b"
    assert await widgets.first_by(col(Widget.name) == "b", colour="red") is None
    assert await widgets.first_by(colour="blue") is None


async def test_a_keyword_filter_of_none_adds_no_condition(widgets: WidgetsTable) -> None:
    await _insert(widgets, 2, colour="red")
    await _insert(widgets, 1)

    assert await widgets.all_count(colour=None) == 3
    assert len(await widgets.all_by(colour=None, name=None)) == 3
    assert len((await widgets.page(10, None, colour=None)).items) == 3
    assert await widgets.all_count(col(Widget.colour).is_(None), colour=None) == 1


async def test_first_by_with_keywords_builds_its_statement_once_and_binds_each_call_s_values(
    widgets: WidgetsTable, statements: list[str]
) -> None:
    await widgets.insert_model(Widget(name="a", colour="red"))
    await widgets.insert_model(Widget(name="b", colour="blue"))

    found = [await widgets.first_by(colour=colour, name=None) for colour in ("red", "blue", "green")]

    assert [widget.name if widget else None for widget in found] == ["a", "b", None]
    assert widgets._first_by_statement(("colour",), False) is widgets._first_by_statement(("colour",), False)
    assert len(set(statements[-3:])) == 1  # the same SQL each time, only the bound values differ


async def test_first_values_by_answers_the_row_s_columns_without_a_model_instance(
    widgets: WidgetsTable, db_session: AsyncSession
) -> None:
    red = await widgets.insert_model(Widget(name="a", colour="red"))
    await widgets.insert_model(Widget(name="b", colour="blue"))
    gone = await widgets.insert_model(Widget(name="c", colour="green"))
    await widgets.soft_delete(gone.id)
    db_session.expunge_all()

    values = await widgets.first_values_by(colour="red", name=None)

    assert values is not None
    assert values["id"] == red.id
    assert values["name"] == "a"
    assert not isinstance(values, Widget)
    assert not db_session.identity_map  # nothing loaded into the session
    assert await widgets.first_values_by(colour="purple") is None
    assert await widgets.first_values_by(colour="green") is None  # soft-deleted
    deleted = await widgets.first_values_by(colour="green", include_deleted=True)
    assert deleted is not None
    assert deleted["name"] == "c"


async def test_unknown_filter_column_raises(widgets: WidgetsTable) -> None:
    with pytest.raises(ValueError, match="no column 'colur'"):
        await widgets.first_by(colur="red")
    with pytest.raises(ValueError, match="no column"):
        await widgets.all_by(nope=1)
    with pytest.raises(ValueError, match="no column"):
        await widgets.update(uuid.uuid4(), {"nope": 1})


async def test_all_all_by_and_count(widgets: WidgetsTable) -> None:
    await _insert(widgets, 3, colour="red")
    await _insert(widgets, 2)
    assert len(await widgets.all()) == 5
    assert len(await widgets.all(limit=2)) == 2
    assert {w.colour for w in await widgets.all_by(colour="red")} == {"red"}
    assert await widgets.all_count() == 5
    assert await widgets.all_count(colour="red") == 3


async def test_page_walks_every_row_exactly_once_newest_first(widgets: WidgetsTable) -> None:
    inserted = await _insert(widgets, 7)
    # Two rows with the same timestamp: the id breaks the tie, so neither is skipped or repeated.
    twin = await widgets.insert_model(Widget(name="twin", created_at=inserted[3].created_at))
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await widgets.page(3, cursor)
        pages += 1
        seen.extend(w.id for w in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted([w.id for w in inserted] + [twin.id])
    assert len(seen) == len(set(seen))
    assert seen[0] == inserted[0].id


async def test_page_applies_filters_and_rejects_bad_cursors(widgets: WidgetsTable) -> None:
    await _insert(widgets, 2, colour="red")
    await _insert(widgets, 2)
    page = await widgets.page(10, colour="red")
    assert len(page.items) == 2
    assert page.next_cursor is None
    for cursor in ["garbage!", "bm90LWpzb24", "WyJ4Il0", "WyJub3QtYS1kYXRlIiwgIngiXQ"]:
        with pytest.raises(ValidationFailedError, match="cursor"):
            await widgets.page(10, cursor)
    with pytest.raises(ValueError, match="limit"):
        await widgets.page(0)


async def test_update_applies_changes_and_touches_updated_at(widgets: WidgetsTable) -> None:
    widget = await widgets.insert_model(Widget(name="a", updated_at=utcnow() - timedelta(days=1)))
    before = widget.updated_at
    updated = await widgets.update(widget.id, {"colour": "green"})
    assert updated is not None
    assert updated.colour == "green"
    assert updated.updated_at > before
    assert await widgets.update(uuid.uuid4(), {"colour": "green"}) is None


async def test_update_accepts_a_pydantic_model_of_changes(widgets: WidgetsTable) -> None:
    class Changes(SQLModel):
        name: str | None = None
        colour: str | None = None

    widget = await widgets.insert_model(Widget(name="a", colour="red"))
    updated = await widgets.update(widget.id, Changes(name="b"))
    assert updated is not None
    assert (updated.name, updated.colour) == ("b", "red")  # unset fields are left alone


async def test_update_model_persists_a_changed_instance(widgets: WidgetsTable, db_session: AsyncSession) -> None:
    widget = await widgets.insert_model(Widget(name="a"))
    widget.name = "renamed"
    await widgets.update_model(widget)
    db_session.expunge_all()
    reloaded = await widgets.first_or_default(widget.id)
    assert reloaded is not None
    assert reloaded.name == "renamed"


async def test_delete_is_hard(widgets: WidgetsTable) -> None:
    widget = await widgets.insert_model(Widget(name="a"))
    assert await widgets.delete(widget.id) is True
    assert await widgets.first_or_default(widget.id, include_deleted=True) is None
    assert await widgets.delete(widget.id) is False


async def test_soft_deleted_rows_are_invisible_unless_asked_for(widgets: WidgetsTable) -> None:
    kept, gone = await _insert(widgets, 2)
    assert await widgets.soft_delete(gone.id) is True
    assert await widgets.soft_delete(gone.id) is False
    assert await widgets.first_or_default(gone.id) is None
    assert await widgets.first_by(name=gone.name) is None
    assert [w.id for w in await widgets.all()] == [kept.id]
    assert await widgets.all_count() == 1
    assert [w.id for w in (await widgets.page(10)).items] == [kept.id]
    assert await widgets.update(gone.id, {"colour": "red"}) is None
    hidden = await widgets.first_or_default(gone.id, include_deleted=True)
    assert hidden is not None
    assert hidden.deleted_at is not None
    assert await widgets.all_count(include_deleted=True) == 2


async def test_soft_delete_needs_a_deleted_at_column(db_session: AsyncSession) -> None:
    await _create_test_tables(db_session)
    gadgets = GadgetsTable(db_session)
    gadget = await gadgets.insert_model(Gadget())
    with pytest.raises(ValueError, match="deleted_at"):
        await gadgets.soft_delete(gadget.id)
    assert [g.id for g in await gadgets.all()] == [gadget.id]


async def test_repository_never_commits(widgets: WidgetsTable, db_session: AsyncSession) -> None:
    widget_id = (await widgets.insert_model(Widget(name="a"))).id
    await db_session.rollback()  # to the savepoint: nothing was committed by the repository
    assert await widgets.first_or_default(widget_id) is None


def _verbs(statements: list[str]) -> list[str]:
    """The reads and writes sent (the test's savepoints left out)."""
    verbs = [statement.lstrip().split(None, 1)[0].upper() for statement in statements]
    return [verb for verb in verbs if verb in ("SELECT", "INSERT", "UPDATE", "DELETE")]


async def test_writes_read_nothing_back_that_the_model_already_holds(
    widgets: WidgetsTable, statements: list[str]
) -> None:
    statements.clear()
    widget = await widgets.insert_model(Widget(name="a"))
    widget.name = "b"
    await widgets.update_model(widget)

    assert _verbs(statements) == ["INSERT", "UPDATE"]


async def test_a_value_the_database_computes_is_read_back_after_a_write(
    db_session: AsyncSession, statements: list[str]
) -> None:
    await _create_test_tables(db_session)
    badges = BadgesTable(db_session)
    statements.clear()

    badge = await badges.insert_model(Badge(name="loud"))
    assert badge.shout == "LOUD"  # INSERT ... RETURNING brought it
    assert _verbs(statements) == ["INSERT"]

    statements.clear()
    badge.name = "louder"
    assert (await badges.update_model(badge)).shout == "LOUDER"  # read back: the UPDATE returned nothing
    assert _verbs(statements) == ["UPDATE", "SELECT"]
    assert "shout" in statements[-1]


async def test_an_insert_reads_back_what_the_database_fills_in_and_leaves_the_row_in_the_session(
    db_session: AsyncSession, statements: list[str]
) -> None:
    await _create_test_tables(db_session)
    tickets = TicketsTable(db_session)
    statements.clear()

    first = await tickets.insert_model(Ticket(note="a"))
    second = await tickets.insert_model(Ticket())

    assert _verbs(statements) == ["INSERT", "INSERT"]  # RETURNING brought the values: no SELECT
    assert isinstance(first.number, int)
    assert second.number == first.number + 1
    assert first.issued_at is not None
    assert first.issued_at.utcoffset() is not None
    statements.clear()
    assert await db_session.get(Ticket, first.id) is first  # in the identity map, as a row read would be
    assert statements == []
    first.note = "b"
    await tickets.update_model(first)  # a change to the returned instance is an ordinary UPDATE
    db_session.expunge_all()
    reread = await tickets.first_or_default(first.id)
    assert reread is not None
    assert (reread.note, reread.number) == ("b", first.number)


async def test_page_can_leave_columns_unread(widgets: WidgetsTable, db_session: AsyncSession) -> None:
    await _insert(widgets, 2, colour="red")
    db_session.expunge_all()  # rows read afresh, not the instances the inserts left in the session

    page = await widgets.page(10, unloaded=("colour",))

    assert [w.name for w in page.items] == ["w0", "w1"]
    with pytest.raises(Exception, match="raiseload"):
        _ = page.items[0].colour
