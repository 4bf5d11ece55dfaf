"""Sentry: on only with a DSN; an unhandled error of a real request arrives tagged, without credentials.

Events go to a capturing transport instead of the network, and the SDK is reset after each test.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from fastapi import APIRouter
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from app.core.logging import REDACTED, configure_logging
from app.core.sentry import init_sentry
from app.web.middleware.request_context import REQUEST_ID_HEADER
from tests.support.apps import build_app, serve
from tests.support.problems import assert_problem
from tests.support.settings import test_settings

DSN = "https://public-key@o1.ingest.sentry.invalid/2"
SECRET_IN_MESSAGE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


class CapturingTransport(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def events(self) -> list[dict[str, Any]]:
        return [
            item.payload.json for e in self.envelopes for item in e.items if item.type == "event" and item.payload.json
        ]

    def serialized(self) -> str:
        return "".join(e.serialize().decode(errors="replace") for e in self.envelopes)


@pytest.fixture(autouse=True)
def logging_first() -> None:
    """Set up logging before Sentry, in the order the app and the worker use.

    Logging's first setup in a process replaces every Loguru sink, and the Loguru integration adds its sink
    once per process: the other way round, no logged error would reach Sentry.
    """
    configure_logging(test_settings())


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    capturing = CapturingTransport()
    yield capturing
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: an inactive client, so later tests report nothing


failing = APIRouter()


@failing.get("/test/sentry/boom")
async def boom() -> None:
    raise RuntimeError(f"the database rejected token {SECRET_IN_MESSAGE}")


def test_without_a_dsn_sentry_stays_off() -> None:
    assert init_sentry(test_settings()) is False
    assert not sentry_sdk.get_client().is_active()


def test_with_a_dsn_it_is_configured_from_settings(transport: CapturingTransport) -> None:
    settings = test_settings(SENTRY_DSN=DSN, SENTRY_TRACES_SAMPLE_RATE=0.25, APP_VERSION="9.9.9")

    assert init_sentry(settings, transport=transport) is True

    options = sentry_sdk.get_client().options
    assert options["environment"] == "test"
    assert options["release"] == "9.9.9"
    collected = options["data_collection"]  # what replaces send_default_pii=False, and stricter
    assert collected["provided_by_user"] is True
    assert collected["user_info"] is False
    assert collected["http_bodies"] == []
    assert collected["stack_frame_variables"] is False
    assert collected["cookies"]["mode"] == "off"
    assert options["traces_sample_rate"] == 0.25
    integrations = set(sentry_sdk.get_client().integrations)
    assert {"starlette", "fastapi", "sqlalchemy", "celery", "loguru"} <= integrations


async def test_an_unhandled_error_is_reported_with_the_request_id_and_without_credentials(
    transport: CapturingTransport, auth_headers: dict[str, str]
) -> None:
    app = build_app(failing)
    init_sentry(test_settings(SENTRY_DSN=DSN), transport=transport)
    async with serve(app) as client:
        response = await client.get(
            "/test/sentry/boom", headers={**auth_headers, REQUEST_ID_HEADER: "sentry-req-1", "Cookie": "session=abc"}
        )
    assert_problem(response, 500)
    sentry_sdk.flush()

    events = transport.events()
    assert len(events) == 1, events
    event = events[0]
    assert event["tags"]["request_id"] == "sentry-req-1"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["environment"] == "test"
    headers = {name.lower(): value for name, value in event["request"]["headers"].items()}
    assert headers.get("authorization", REDACTED) == REDACTED
    assert headers.get("cookie", REDACTED) == REDACTED
    everything = transport.serialized()
    token = auth_headers["Authorization"].removeprefix("Bearer ")
    assert token not in everything
    assert SECRET_IN_MESSAGE not in everything
    assert "session=abc" not in everything
    assert json.dumps(event)  # plain JSON all the way down


def test_initialising_again_with_the_same_dsn_keeps_the_client(transport: CapturingTransport) -> None:
    settings = test_settings(SENTRY_DSN=DSN)
    init_sentry(settings)
    client = sentry_sdk.get_client()

    assert init_sentry(settings) is True

    assert sentry_sdk.get_client() is client
