"""Validation rules shared by request models.

Error messages describe the rule, never the value: echoing input back would reflect whatever a
client sent (markup, secrets, megabytes) into the response.
"""

import math
import re
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator

EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
EVENT_NAME_MAX_LENGTH = 100
URL_MAX_LENGTH = 2048
JSON_MAX_DEPTH = 64
_EVENT_NAME = re.compile(EVENT_NAME_PATTERN)

JsonT = TypeVar("JsonT")


def check_event_name(value: str) -> str:
    # Length first: the pattern need not scan a huge value to reject it.
    if len(value) > EVENT_NAME_MAX_LENGTH:
        raise ValueError(f"event names are at most {EVENT_NAME_MAX_LENGTH} characters")
    if not _EVENT_NAME.fullmatch(value):
        raise ValueError("event names are lowercase dotted words such as 'order.created'")
    return value


def check_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL character and nothing UTF-8 cannot encode.

    JSON allows both (`"\\u0000"`, a lone surrogate such as `"\\ud800"`) and Python accepts them,
    but PostgreSQL refuses them in TEXT and JSONB alike, so they are caught here as a 422.
    """
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must not contain an unpaired surrogate (\\ud800-\\udfff)") from None
    return value


# The type of every free-text request field that is stored: `url: StorableText`.
# With length bounds, put them before the check, in the same Annotated:
#     Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_text)]
# `Field(max_length=...)` on `StorableText | None` would be checked after validation instead, with
# the error "Value should have at most 200 items" rather than "String should have at most 200 characters".
StorableText = Annotated[str, AfterValidator(check_text)]


def check_json_storable(value: JsonT) -> JsonT:
    """A JSON value PostgreSQL's JSONB can store and this service can serialise again.

    Python's json module accepts NaN, Infinity, numbers too large for a float (read as infinity),
    NUL characters and lone surrogates; JSONB refuses all of them. Nesting is bounded well below
    Pydantic's serialisation limit (about 255 levels). Walked without recursion, so any depth the
    parser accepted is safe to walk.
    """
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth > JSON_MAX_DEPTH:
            raise ValueError(f"JSON is nested more than {JSON_MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            for key in item:
                check_text(key)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            check_text(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("JSON numbers must be finite: NaN and Infinity cannot be stored")
    return value


def check_http_url(value: str) -> str:
    """http(s) with a host; kept exactly as given (no normalisation the client did not ask for)."""
    if len(value) > URL_MAX_LENGTH:
        raise ValueError(f"URL is longer than {URL_MAX_LENGTH} characters")
    if any(ch.isspace() for ch in value):
        raise ValueError("URL must not contain white space")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError:
        raise ValueError("URL is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("URL must be an absolute http:// or https:// URL with a host")
    del port
    return value
