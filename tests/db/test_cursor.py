import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.db.base_table import BaseTable
from app.db.cursor import KEYSET_CURSOR_PATTERN, cursor_pattern, decode_cursor, encode_cursor
from app.db.delivery.table import DeliveriesTable
from app.db.message.table import MessagesTable
from app.db.webhook.table import WebhooksTable

TYPES = (datetime, uuid.UUID)
# Fixed, not uuid4(): pytest-xdist workers must collect identical parameter ids.
KEY = "6f1c1a4e1d2b4c539d7f0a1b2c3d4e5f"


def test_round_trip_normalises_to_utc_and_keeps_microseconds() -> None:
    when = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    key = uuid.uuid4()
    cursor = encode_cursor([when, key])

    decoded = decode_cursor(cursor, TYPES)

    assert decoded == [when, key]
    assert decoded[0].tzinfo == UTC
    assert cursor == f"1777629600123456.{key.hex}"
    assert re.fullmatch(KEYSET_CURSOR_PATTERN, cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        f"1777629600123456.{KEY}.1",  # too long
        "1777629600123456",  # too short
        f"1777629600.123456.{KEY}",
        f"yesterday.{KEY}",
        "1777629600123456.not-a-uuid",
        f"1777629600123456.{KEY.upper()}",
        f"12345678901234567.{KEY}",  # 17 digits: beyond the timestamps a cursor holds
        f"+1.{KEY}",
        "",
    ],
)
def test_malformed_cursors_are_value_errors(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a valid cursor"):
        decode_cursor(cursor, TYPES)


@pytest.mark.parametrize("cursor", [f"{'9' * 16}.{KEY}", f"-{'9' * 16}.{KEY}", f"0.{'0' * 32}"])
def test_every_string_of_the_documented_shape_decodes(cursor: str) -> None:
    assert re.fullmatch(KEYSET_CURSOR_PATTERN, cursor)
    assert len(decode_cursor(cursor, TYPES)) == 2


@pytest.mark.parametrize("table", [WebhooksTable, MessagesTable, DeliveriesTable])
def test_every_table_pages_with_the_documented_cursor(table: type[BaseTable[object]]) -> None:  # type: ignore[type-var]
    types = [table.model.__table__.c[name].type.python_type for name in table.page_order]  # type: ignore[attr-defined]
    assert cursor_pattern(types) == KEYSET_CURSOR_PATTERN


def test_naive_timestamps_and_unknown_key_types_have_no_cursor() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_cursor([datetime(2026, 1, 1), uuid.UUID(KEY)])  # noqa: DTZ001 - the point of the test
    with pytest.raises(TypeError):
        encode_cursor([1.5])
    with pytest.raises(TypeError):
        cursor_pattern([float])
