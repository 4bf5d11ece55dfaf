"""Keyset cursors: the last row's sort-key values, as text of one fixed shape.

For the default page order (created_at, id) a cursor is `<microseconds since 1970-01-01 UTC>.<id as 32 hex
digits>`, e.g. `1767607867412000.3f2c8d1e9b6a4c0d8e7f6a5b4c3d2e1f`. Clients treat it as opaque, but its shape
is stated in OpenAPI (KEYSET_CURSOR_PATTERN), and every string of that shape is a valid position: the page
after it, maybe empty. A generated client or a fuzzer driven by the document meets no hidden rule.
"""

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# At most 16 digits: ±317 years around 1970, always within what a datetime (and a TIMESTAMPTZ) can hold.
_PARTS: dict[type, str] = {datetime: r"-?[0-9]{1,16}", uuid.UUID: r"[0-9a-f]{32}", int: r"-?[0-9]{1,18}"}


def cursor_pattern(types: Sequence[type]) -> str:
    """The regular expression every cursor over keys of `types` matches, and nothing else."""
    try:
        return "^" + r"\.".join(_PARTS[kind] for kind in types) + "$"
    except KeyError as exc:
        raise TypeError(f"no cursor form for keys of type {exc.args[0].__name__}") from None


# The cursor of every table paged in the default order (created_at, id): what the API documents.
KEYSET_CURSOR_PATTERN = cursor_pattern((datetime, uuid.UUID))


def encode_cursor(values: Sequence[Any]) -> str:
    return ".".join(_encode(value) for value in values)


def decode_cursor(cursor: str, types: Sequence[type]) -> list[Any]:
    """The key values of `cursor`, parsed as `types`; ValueError if it is not such a cursor."""
    if not re.fullmatch(cursor_pattern(types), cursor):
        raise ValueError("not a valid cursor; pass the next_cursor of a previous page")
    return [_decode(part, kind) for part, kind in zip(cursor.split("."), types, strict=True)]


def _encode(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("cursor timestamps are timezone-aware")
        return str((value - _EPOCH) // _MICROSECOND)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"no cursor form for {type(value).__name__}")


def _decode(part: str, kind: type) -> Any:
    if kind is datetime:
        return _EPOCH + int(part) * _MICROSECOND
    if kind is uuid.UUID:
        return uuid.UUID(hex=part)
    return int(part)
