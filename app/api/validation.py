"""Validation rules shared by request models.

Error messages describe the rule, never the value: echoing input back would reflect whatever a
client sent (markup, secrets, megabytes) into the response.
"""

import math
import re
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler, WithJsonSchema
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType

EVENT_NAME_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
EVENT_NAME_MAX_LENGTH = 100
URL_MAX_LENGTH = 2048
# The whole rule for webhook URLs, one expression that OpenAPI states as it is: absolute http(s); a host that
# is an ASCII name or IPv4 address (internationalised names in their xn-- form) or a bracketed IPv6 address
# (RFC 3986's grammar, no zone id); an optional port 0-65535; optional user info; a path, query and fragment
# of URI characters (others percent-encoded). The code checks exactly this expression, so any URL the
# document admits is one the API takes, and the other way round.
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = f"(?:{_H16}:{_H16}|{_OCTET}(?:\\.{_OCTET}){{3}})"
_IPV6 = "|".join(
    [
        f"(?:{_H16}:){{6}}{_LS32}",
        f"::(?:{_H16}:){{5}}{_LS32}",
        f"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
        *(f"(?:(?:{_H16}:){{0,{n - 1}}}{_H16})?::(?:{_H16}:){{{3 - n}}}{_LS32}" for n in (2, 3)),
        f"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
        f"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
        f"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
        f"(?:(?:{_H16}:){{0,6}}{_H16})?::",
    ]
)
_PORT = "(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
URL_PATTERN = (
    "^https?://(?:[A-Za-z0-9._~!$&'()*+,;=:%-]*@)?"
    f"(?:[A-Za-z0-9._-]+|\\[(?:{_IPV6})\\])"
    f"(?::{_PORT})?"
    "(?:[/?#][A-Za-z0-9._~!$&'()*+,;=:@/?#%-]*)?$"
)
JSON_MAX_DEPTH = 64
_EVENT_NAME = re.compile(EVENT_NAME_PATTERN)
_URL = re.compile(URL_PATTERN)

# What OpenAPI says of these values (the validators below give the friendlier messages).
EVENT_NAME_SCHEMA: JsonDict = {
    "type": "string",
    "minLength": 1,
    "maxLength": EVENT_NAME_MAX_LENGTH,
    "pattern": EVENT_NAME_PATTERN,
}
URL_SCHEMA: JsonDict = {"minLength": 1, "maxLength": URL_MAX_LENGTH, "pattern": URL_PATTERN}
# Text PostgreSQL can store (check_text): no NUL character. (Nor a lone surrogate, which no ECMA 262 pattern
# in Unicode mode can name; the descriptions say so, and JSON carries one only as an explicit "\\ud800".)
STORABLE_TEXT_PATTERN = "^[^\\u0000]*$"

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
StorableText = Annotated[str, AfterValidator(check_text), Field(json_schema_extra={"pattern": STORABLE_TEXT_PATTERN})]


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
    """URL_PATTERN, within URL_MAX_LENGTH; kept exactly as given (no normalisation the client did not ask for)."""
    if len(value) > URL_MAX_LENGTH:
        raise ValueError(f"URL is longer than {URL_MAX_LENGTH} characters")
    if any(ch.isspace() for ch in value):
        raise ValueError("URL must not contain white space")
    if not value.startswith(("http://", "https://")) or len(value.split("/", 3)[2].rpartition("@")[2]) == 0:
        raise ValueError("URL must be an absolute http:// or https:// URL with a host")
    if not _URL.fullmatch(value):
        raise ValueError(
            "URL is malformed: the host must be an ASCII name or IPv4 address, the port 0-65535, and other "
            "characters URI characters (percent-encode the rest)"
        )
    return value


class _StorableKeysOnly:
    """JSON schema: an object whose keys are storable text, and no others (Pydantic alone would say
    patternProperties, which admits any other key too)."""

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        generated = handler(schema)
        (values,) = generated.pop("patternProperties").values()
        return {**generated, "propertyNames": {"pattern": STORABLE_TEXT_PATTERN}, "additionalProperties": values}


_StorableString = Annotated[str, WithJsonSchema({"type": "string", "pattern": STORABLE_TEXT_PATTERN})]
StorableJsonValue = TypeAliasType(
    "StorableJsonValue",
    "_StorableJsonObject | list[StorableJsonValue] | _StorableString | int | float | bool | None",
)
_StorableJsonObject = Annotated[dict[_StorableString, StorableJsonValue], _StorableKeysOnly]


def _as_is(value: object) -> object:
    return value


# The type of a stored JSON object (a message payload). Validated as a plain dict and then walked once by
# check_json_storable; OpenAPI shows the recursive schema of what that walk admits (storable strings and
# keys at every level; it cannot state the depth limit or that numbers are finite, so the description
# does). Validating through the recursive type itself would cost five times as much on a large payload.
StorableJsonObject = Annotated[
    dict[str, Any],
    BeforeValidator(_as_is, json_schema_input_type=_StorableJsonObject),
    AfterValidator(check_json_storable),
]
