"""Sentry error reporting for the API and the worker, on when SENTRY_DSN is set.

The SDK and its integrations are imported only then: about 6 MiB per process that has no DSN.
"""

from typing import TYPE_CHECKING, Any

from app.core.config import Settings
from app.core.context import get_request_id
from app.core.logging import REDACTED, redact

if TYPE_CHECKING:
    from sentry_sdk._types import DataCollectionUserOptions
    from sentry_sdk.integrations import Integration
    from sentry_sdk.transport import Transport
    from sentry_sdk.types import Event, Hint

SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
# Header names Sentry's own denylist does not cover, but that identify a person or carry credentials.
_MORE_SENSITIVE_HEADER_TERMS = ["cookie", "forwarded", "-ip", "remote-", "via", "-user"]
DATA_COLLECTION: "DataCollectionUserOptions" = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist", "terms": _MORE_SENSITIVE_HEADER_TERMS}},
    "http_bodies": [],
    "url_query_params": {"mode": "denylist"},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
    "gen_ai": {"inputs": False, "outputs": False},
    "graphql": {"document": False, "variables": False},
}


def init_sentry(settings: Settings, *, transport: "Transport | None" = None) -> bool:
    """Initialise Sentry for this process if SENTRY_DSN is set; True if it was. `transport` is for tests."""
    if settings.SENTRY_DSN is None:
        return False
    import sentry_sdk  # only where Sentry is on (see the module docstring)

    dsn = settings.SENTRY_DSN.get_secret_value()
    client = sentry_sdk.get_client()
    if transport is None and client.is_active() and client.dsn == dsn:
        return True  # already initialised in this process (an app is built per test, for example)
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.APP_ENVIRONMENT,
        release=settings.APP_VERSION,
        # What send_default_pii=False means (that option is deprecated in favour of this one), and less:
        # no request bodies (client payloads), no cookies, no local variables in stack frames (they hold
        # the ASGI scope with its headers, tokens and secrets), no SQL parameters.
        data_collection=DATA_COLLECTION,
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE,
        profiles_sample_rate=settings.SENTRY_PROFILES_SAMPLE_RATE,
        # Exactly these integrations, not whatever happens to be installed.
        auto_enabling_integrations=False,
        integrations=_integrations(),
        before_send=_before_send,
        before_send_transaction=_before_send,
        transport=transport,
    )
    return True


def _integrations() -> list["Integration"]:
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration
    from sentry_sdk.integrations.loguru import LoguruIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration

    return [
        StarletteIntegration(),
        FastApiIntegration(),
        SqlalchemyIntegration(),
        CeleryIntegration(),
        # Errors logged through Loguru become events (stdlib logging is routed into Loguru, see
        # app/core/logging.py), so the stdlib integration must not report them a second time.
        LoguruIntegration(),
        LoggingIntegration(level=None, event_level=None),
    ]


def _before_send(event: "Event", _: "Hint") -> "Event":
    """Tag the request id (it is in every log line and problem response) and scrub credentials."""
    request_id = get_request_id()
    if request_id is not None:
        event.setdefault("tags", {})["request_id"] = request_id
    request: Any = event.get("request")
    if isinstance(request, dict):
        headers = request.get("headers")
        if isinstance(headers, dict):
            request["headers"] = {
                name: REDACTED if name.lower() in SENSITIVE_HEADERS else value for name, value in headers.items()
            }
        request.pop("cookies", None)
    scrubbed: Event = redact(event)
    return scrubbed
