"""ASGI header lists read and amended in place, for the middlewares on every request's path.

Starlette's `Headers` and `MutableHeaders` copy the list on construction, and encode and scan it again for each
name set: on every request, through three middlewares, that was more work than the middlewares' own. ASGI
servers and Starlette give header names in lower case, as these functions expect.
"""

from collections.abc import Iterable
from typing import Any

RawHeader = tuple[bytes, bytes]


def encode(headers: dict[str, str]) -> list[RawHeader]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def header_value(scope_or_message: Any, name: bytes) -> bytes | None:
    """The first value of header `name` (lower case) of a request scope or a response start message."""
    for key, value in scope_or_message.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


def set_headers(message: Any, headers: Iterable[RawHeader], *, replace: bool) -> None:
    """Add `headers` to a response start message: replacing any of the same name there (`replace`), or only
    those it lacks (like `MutableHeaders.__setitem__` and `setdefault`)."""
    added = list(headers)
    names = {name for name, _ in added}
    existing = list(message.get("headers", ()))
    if replace:
        message["headers"] = [header for header in existing if header[0] not in names] + added
    else:
        present = {name for name, _ in existing}
        message["headers"] = existing + [header for header in added if header[0] not in present]
