"""BaseTable[Model]: the generic async repository every table class extends.

Repositories insert, add and flush; they never commit. The service method that completes a use case
commits once, so a use case that writes several tables is atomic.

Filters come as keywords (`first_by(client_id="a")`: equality; a keyword whose value is None adds no
condition, so optional filters pass straight through) and as SQL expressions for anything else
(`all_by(col(Message.status).in_(...), client_id="a")`, `first_by(col(Webhook.description).is_(None))`).
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import (
    Column,
    ColumnElement,
    RowMapping,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState, class_mapper, defer, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import SQLModel

from app.core.exceptions import ValidationFailedError
from app.core.time import utcnow
from app.db.cursor import decode_cursor, encode_cursor

ModelT = TypeVar("ModelT", bound=SQLModel)

DEFAULT_MAX_ROWS = 1000
SOFT_DELETE_COLUMN = "deleted_at"
UPDATED_AT_COLUMN = "updated_at"
CREATED_AT_COLUMN = "created_at"


# first_by's (and first_values_by's) statements per table, filter names, include_deleted and whether they select
# the model or its table's columns (app code spells a handful of each).
_first_by_statements: dict[tuple[type[SQLModel], tuple[str, ...], bool, bool], Select[Any]] = {}
_FILTER_PARAMETER = "filter_"
# insert_model's columns per table (see _insert_columns).
_insert_columns: dict[type[SQLModel], list[tuple[str, Column[Any], bool]]] = {}


@dataclass(frozen=True, slots=True)
class Page(Generic[ModelT]):
    items: list[ModelT]
    next_cursor: str | None


class InvalidCursorError(ValidationFailedError):
    """A `cursor` that is not the next_cursor of a page of this table."""

    def __init__(self) -> None:
        super().__init__("The cursor is not valid; pass the next_cursor of a previous page.", field="cursor")


class BaseTable(Generic[ModelT]):
    """Subclass as `class MessagesTable(BaseTable[Message])` and name the model: `model = Message`."""

    model: type[ModelT]
    # Keyset order for page(): newest first, ties broken by primary key. Both must be indexed.
    page_order: ClassVar[tuple[str, ...]] = ("created_at", "id")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(getattr(cls, "model", None), type):
            raise TypeError(f"{cls.__name__} must name its table class: model = ...")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- reads -------------------------------------------------------------------------------

    async def first_or_default(self, id: uuid.UUID, *, include_deleted: bool = False) -> ModelT | None:
        return await self.first_by(include_deleted=include_deleted, id=id)

    async def first_by(
        self, *where: ColumnElement[bool], include_deleted: bool = False, **filters: Any
    ) -> ModelT | None:
        if where:
            statement = select(self.model).where(*self._conditions(where, filters, include_deleted)).limit(1)
            return (await self.session.scalars(statement)).first()
        statement, parameters = self._first_by_query(filters, include_deleted, columns=False)
        return (await self.session.scalars(statement, parameters)).first()

    async def first_values_by(self, *, include_deleted: bool = False, **filters: Any) -> RowMapping | None:
        """first_by's row as a mapping of column name to value, without a model instance: for a read answered
        straight from the columns (validate a response model from it). A plain Core SELECT: no ORM loading,
        no identity map, about a tenth of a GET's CPU less than first_by."""
        statement, parameters = self._first_by_query(filters, include_deleted, columns=True)
        return (await self.session.execute(statement, parameters)).mappings().first()

    async def all(self, *, limit: int = DEFAULT_MAX_ROWS, include_deleted: bool = False) -> list[ModelT]:
        return await self.all_by(limit=limit, include_deleted=include_deleted)

    async def all_by(
        self,
        *where: ColumnElement[bool],
        limit: int = DEFAULT_MAX_ROWS,
        include_deleted: bool = False,
        **filters: Any,
    ) -> list[ModelT]:
        conditions = self._conditions(where, filters, include_deleted)
        statement = select(self.model).where(*conditions).order_by(*self._order()).limit(limit)
        return list((await self.session.scalars(statement)).all())

    async def all_count(self, *where: ColumnElement[bool], include_deleted: bool = False, **filters: Any) -> int:
        conditions = self._conditions(where, filters, include_deleted)
        statement = select(func.count()).select_from(self._table).where(*conditions)
        return int((await self.session.scalar(statement)) or 0)

    async def page(
        self,
        limit: int,
        cursor: str | None = None,
        *where: ColumnElement[bool],
        include_deleted: bool = False,
        unloaded: Sequence[str] = (),
        **filters: Any,
    ) -> Page[ModelT]:
        """Up to `limit` rows after `cursor` (a previous page's next_cursor), in page_order; an invalid cursor
        raises InvalidCursorError (a 422 naming the `cursor` field).

        `unloaded` names columns not to read at all (a large payload a list leaves out): reading one of them
        on a row of the page raises instead of loading it.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        conditions = self._conditions(where, filters, include_deleted)
        if cursor is not None:
            keys = tuple_(*(self._column(name) for name in self.page_order))
            conditions.append(keys < tuple_(*self._decode_cursor(cursor)))
        statement = select(self.model).where(*conditions).order_by(*self._order()).limit(limit + 1)
        if unloaded:
            statement = statement.options(*(defer(getattr(self.model, name), raiseload=True) for name in unloaded))
        rows = list((await self.session.scalars(statement)).all())
        if len(rows) <= limit:
            return Page(items=rows, next_cursor=None)
        items = rows[:limit]
        return Page(items=items, next_cursor=self._encode_cursor(items[-1]))

    # ---- writes ------------------------------------------------------------------------------

    async def insert_model(self, model: ModelT) -> ModelT:
        """INSERT the model's row and attach the instance to the session, as it now is in the database.

        One Core INSERT, with RETURNING for the values the database fills in (server defaults the model
        left unset, computed and identity columns): the instance already holds everything else. The ORM's
        flush sends the same INSERT but runs its unit of work for the one row (8 % of a POST's instructions;
        docs/decisions.md). A Core statement fires no mapper events (before_insert, after_insert) and no
        flush events; the engine's (tracing) still see it. After a rollback the instance is expired, like any
        persistent one."""
        timestamped = CREATED_AT_COLUMN in self._table.c and UPDATED_AT_COLUMN in self._table.c
        if timestamped and UPDATED_AT_COLUMN not in model.model_fields_set:
            # One instant for both: a new row has not been updated (each default reads the clock anew).
            setattr(model, UPDATED_AT_COLUMN, getattr(model, CREATED_AT_COLUMN))
        state: InstanceState[ModelT] = inspect(model, raiseerr=True)
        values: dict[str, Any] = {}
        filled_in: list[tuple[str, Column[Any]]] = []
        for attribute, column, generated in self._insert_columns():
            value = state.dict.get(attribute)
            # As the ORM's flush: a column with a server default that the model leaves unset or None is the
            # database's to fill in; a column without one that is unset is left out (NULL).
            if generated or (value is None and column.server_default is not None):
                filled_in.append((attribute, column))
            elif attribute in state.dict:
                values[column.key] = value
        statement = insert(self._table)
        if filled_in:
            statement = statement.returning(*(column for _, column in filled_in))
        result = await self.session.execute(statement, values)
        if filled_in:
            row = result.one()
            for (attribute, _), value in zip(filled_in, row, strict=True):
                set_committed_value(model, attribute, value)
        # Now as if read from the table: history reset, the identity key from the primary key, in the session.
        make_transient_to_detached(model)
        self.session.add(model)
        return model

    async def insert_many(self, models: Sequence[ModelT]) -> None:
        """Insert the rows in one statement (a multi-row INSERT); nothing is read back, so use it for models
        whose every column the instance sets (client-side defaults)."""
        timestamped = CREATED_AT_COLUMN in self._table.c and UPDATED_AT_COLUMN in self._table.c
        for model in models:
            if timestamped and UPDATED_AT_COLUMN not in model.model_fields_set:
                setattr(model, UPDATED_AT_COLUMN, getattr(model, CREATED_AT_COLUMN))
        self.session.add_all(models)
        await self.session.flush()

    async def update(self, id: uuid.UUID, data: Mapping[str, Any] | BaseModel) -> ModelT | None:
        changes = data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)
        for name in changes:
            self._column(name)
        row = await self.first_or_default(id)
        if row is None:
            return None
        for name, value in changes.items():
            setattr(row, name, value)
        return await self.update_model(row)

    async def update_model(self, model: ModelT) -> ModelT:
        if UPDATED_AT_COLUMN in self._table.c:
            setattr(model, UPDATED_AT_COLUMN, utcnow())
        self.session.add(model)
        await self.session.flush()
        await self._read_server_values(model)
        return model

    async def delete(self, id: uuid.UUID) -> bool:
        id_column = self._column("id")
        statement = delete(self.model).where(id_column == id).returning(id_column)
        return (await self.session.scalar(statement)) is not None

    async def soft_delete(self, id: uuid.UUID) -> bool:
        deleted_at = self._column(SOFT_DELETE_COLUMN)
        id_column = self._column("id")
        values: dict[str, Any] = {SOFT_DELETE_COLUMN: utcnow()}
        if UPDATED_AT_COLUMN in self._table.c:
            values[UPDATED_AT_COLUMN] = values[SOFT_DELETE_COLUMN]
        statement = (
            update(self.model)
            .where(id_column == id, deleted_at.is_(None))
            .values(values)
            .returning(id_column)
            .execution_options(synchronize_session="fetch")
        )
        return (await self.session.scalar(statement)) is not None

    # ---- helpers -----------------------------------------------------------------------------

    @property
    def _table(self) -> Table:
        table = self.model.__table__  # type: ignore[attr-defined]
        assert isinstance(table, Table)
        return table

    def _insert_columns(self) -> list[tuple[str, Column[Any], bool]]:
        """Each column's attribute name, the column, and whether the database always computes its value."""
        columns = _insert_columns.get(self.model)
        if columns is None:
            mapper = class_mapper(self.model)
            columns = [
                (
                    mapper.get_property_by_column(column).key,
                    column,
                    column.computed is not None or column.identity is not None,
                )
                for column in self._table.c
            ]
            _insert_columns[self.model] = columns
        return columns

    def _column(self, name: str) -> ColumnElement[Any]:
        try:
            return self._table.c[name]
        except KeyError:
            raise ValueError(f"{self.model.__name__} has no column {name!r}") from None

    async def _read_server_values(self, model: ModelT) -> None:
        """Load what the database filled in (server defaults the model did not set); nothing else is
        read back: the instance already holds every value it sent."""
        state: InstanceState[ModelT] = inspect(model, raiseerr=True)
        unloaded = state.unloaded & set(self._table.c.keys())
        if unloaded:
            await self.session.refresh(model, attribute_names=sorted(unloaded))

    def _first_by_query(
        self, filters: dict[str, Any], include_deleted: bool, *, columns: bool
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The cached statement for the keyword filters given (None: no condition) and its parameters."""
        given = {name: value for name, value in filters.items() if value is not None}
        statement = self._first_by_statement(tuple(sorted(given)), include_deleted, columns=columns)
        return statement, {_FILTER_PARAMETER + name: value for name, value in given.items()}

    def _first_by_statement(
        self, names: tuple[str, ...], include_deleted: bool, *, columns: bool = False
    ) -> Select[Any]:
        """first_by's SELECT for keyword filters `names` (of the table's columns if `columns`, else of the
        model), built once: building one costs more Python than running it (each comparison types its bind
        parameter); a statement reused also keeps its cache key."""
        key = (self.model, names, include_deleted, columns)
        statement = _first_by_statements.get(key)
        if statement is None:
            equal: dict[str, Any] = {name: bindparam(_FILTER_PARAMETER + name) for name in names}
            selected = select(self._table) if columns else select(self.model)
            statement = selected.where(*self._conditions((), equal, include_deleted)).limit(1)
            _first_by_statements[key] = statement
        return statement

    def _conditions(
        self, where: Sequence[ColumnElement[bool]], filters: Mapping[str, Any], include_deleted: bool
    ) -> list[ColumnElement[bool]]:
        conditions = list(where)
        conditions.extend(self._column(name) == value for name, value in filters.items() if value is not None)
        if not include_deleted and SOFT_DELETE_COLUMN in self._table.c:
            conditions.append(self._table.c[SOFT_DELETE_COLUMN].is_(None))
        return conditions

    def _order(self) -> list[ColumnElement[Any]]:
        return [self._column(name).desc() for name in self.page_order]

    def _encode_cursor(self, row: ModelT) -> str:
        return encode_cursor([getattr(row, name) for name in self.page_order])

    def _decode_cursor(self, cursor: str) -> Sequence[Any]:
        types = [self._column(name).type.python_type for name in self.page_order]
        try:
            return decode_cursor(cursor, types)
        except ValueError:
            raise InvalidCursorError() from None
