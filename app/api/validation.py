"""Validation rules shared by request models."""

import re
from urllib.parse import urlsplit

EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
EVENT_NAME_MAX_LENGTH = 100
URL_MAX_LENGTH = 2048
_EVENT_NAME = re.compile(EVENT_NAME_PATTERN)


def check_event_name(value: str) -> str:
    if len(value) > EVENT_NAME_MAX_LENGTH or not _EVENT_NAME.fullmatch(value):
        raise ValueError(f"event names are lowercase dotted words such as 'order.created', got {value!r}")
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
