import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.db.cursor import decode_cursor, encode_cursor

TYPES = (datetime, uuid.UUID)
# Fixed, not uuid4(): pytest-xdist workers must collect identical parameter ids.
KEY = "6f1c1a4e-1d2b-4c53-9d7f-0a1b2c3d4e5f"


def raw_cursor(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def test_round_trip_normalises_to_utc() -> None:
    when = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    key = uuid.uuid4()
    decoded = decode_cursor(encode_cursor([when, key]), TYPES)
    assert decoded == [when, key]
    assert decoded[0].tzinfo == UTC


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 !",
        raw_cursor({"a": 1}),
        raw_cursor(["2026-01-01T00:00:00+00:00"]),  # too short
        raw_cursor(["2026-01-01T00:00:00", KEY]),  # naive
        raw_cursor(["yesterday", KEY]),
        raw_cursor(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        raw_cursor([20260101, KEY]),
        # Valid ISO 8601, but outside what a timestamp can hold once converted to UTC.
        raw_cursor(["9999-12-31T23:59:59-01:00", KEY]),
        raw_cursor(["0001-01-01T00:00:00+01:00", KEY]),
    ],
)
def test_malformed_cursors_are_value_errors(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a valid cursor"):
        decode_cursor(cursor, TYPES)
