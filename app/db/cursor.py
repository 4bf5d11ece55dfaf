"""Keyset cursors: the last row's sort-key values, as base64url JSON. Opaque to clients."""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    """The key values of `cursor`, parsed as `types`; ValueError if it is not such a cursor."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong shape")
        return [_parse(value, kind) for value, kind in zip(values, types, strict=True)]
    except (ValueError, TypeError, OverflowError, binascii.Error):  # JSON and Unicode errors are ValueErrors
        raise ValueError("not a valid cursor; pass the next_cursor of a previous page") from None


def _parse(value: Any, kind: type) -> Any:
    if not isinstance(value, str):
        raise TypeError("cursor values are strings")
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("cursor timestamps are timezone-aware")
        # Normalised here, where an out-of-range instant (year 1 at +01:00) fails as bad input,
        # not later in the database driver.
        return parsed.astimezone(UTC)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    return kind(value)
