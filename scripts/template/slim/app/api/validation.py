"""Validation rules shared by request models.

Error messages describe the rule, never the value: echoing input back would reflect whatever a
client sent (markup, secrets, megabytes) into the response.
"""

from typing import Annotated

from pydantic import AfterValidator, Field

# Text PostgreSQL can store (check_text): no NUL character. (Nor a lone surrogate, which no ECMA 262 pattern
# in Unicode mode can name; the descriptions say so, and JSON carries one only as an explicit "\\ud800".)
STORABLE_TEXT_PATTERN = "^[^\\u0000]*$"


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


# The type of every free-text request field that is stored: `name: StorableText`.
# With length bounds, put them before the check, in the same Annotated:
#     Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(check_text)]
# `Field(max_length=...)` on `StorableText | None` would be checked after validation instead, with
# the error "Value should have at most 200 items" rather than "String should have at most 200 characters".
StorableText = Annotated[str, AfterValidator(check_text), Field(json_schema_extra={"pattern": STORABLE_TEXT_PATTERN})]
