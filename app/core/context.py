"""Per-request (and per-task) context shared through context variables."""

import re
from contextvars import ContextVar
from secrets import token_hex

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# A caller's id is accepted only if it is safe to log and echo; otherwise we mint our own.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def get_request_id() -> str | None:
    return request_id_var.get()


def resolve_request_id(incoming: str | None) -> str:
    """The incoming id (X-Request-ID, or a task header) if valid, else a new one."""
    if incoming and _VALID_REQUEST_ID.fullmatch(incoming):
        return incoming
    # 128 random bits as 32 hex digits, like uuid4().hex without building a UUID (0.7 % of a GET by id's instructions).
    return token_hex(16)
