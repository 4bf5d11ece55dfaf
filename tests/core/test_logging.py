"""Logging: one sink, text locally and JSON elsewhere, stdlib routed in, context ids on lines, secrets scrubbed.

Output is read from stderr (capsys) as the real sink writes it. The redaction tests drive real requests and
a real outgoing webhook call with every library at DEBUG, so SQL parameters and HTTP traffic are logged.
"""

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.deps import get_session
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.models import WebhookMessage
from app.clients.webhooks.signing import generate_secret
from app.core.config import Settings
from app.core.context import request_id_var
from app.core.logging import REDACTED, Redactor, configure_logging, redact
from app.core.time import utcnow
from app.web.middleware.request_context import REQUEST_ID_HEADER
from tests.support.apps import build_app, serve
from tests.support.receiver import Receiver
from tests.support.sealing import sealed
from tests.support.settings import SAFE_SECRET, SAFE_SECRET_KEYS, test_settings

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjbGllbnQtYSJ9.kX1z5xQ0bC3v7yR2nT8uW4pL6mJ9hG1fD3sA5qE7wY0"
SIGNATURE = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Reconfigure = Callable[..., Settings]


@pytest.fixture
def reconfigure(settings: Settings) -> Iterator[Reconfigure]:
    """Configure logging from test settings plus overrides; the session's configuration is restored after."""

    def apply(**overrides: Any) -> Settings:
        settings = test_settings(**overrides)
        configure_logging(settings)
        return settings

    yield apply
    configure_logging(settings)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- Redaction --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"GET https://hooks.example/in?access_token={JWT}&x=1", JWT),
        (f"{{'headers': {{'authorization': 'bearer {JWT}'}}}}", JWT),
        (f"INSERT ... ('https://example.com', '{WEBHOOK_SECRET}')", WEBHOOK_SECRET),
        (f"webhook-signature: {SIGNATURE}", SIGNATURE.removeprefix("v1,")),
        (f"webhook-signature: {SIGNATURE} v1,bm90LWEtcmVhbC1zaWduYXR1cmUtYXQtYWxs", "bm90LWEtcmVhbC1zaWdu"),
    ],
)
def test_known_secret_shapes_are_redacted(text: str, secret: str) -> None:
    redacted = Redactor().text(text)

    assert secret not in redacted
    assert REDACTED in redacted


def test_configured_secrets_are_redacted_by_value_but_short_ones_are_left_alone() -> None:
    redactor = Redactor([SAFE_SECRET, "postgres"])

    assert redactor.text(f"key={SAFE_SECRET}!") == f"key={REDACTED}!"
    assert redactor.text("postgresql+asyncpg://postgres@db/app") == "postgresql+asyncpg://postgres@db/app"


def test_ordinary_text_is_unchanged() -> None:
    text = "POST /api/v1/messages 202 4.2ms; retry v1,2 of 5; eyJ; keyJ; Bearer"

    assert Redactor().text(text) == text


def test_values_under_sensitive_keys_are_dropped_whole() -> None:
    value = {"headers": {"Authorization": "anything", "accept": "*/*"}, "password": 1234, "items": [f"Bearer {JWT}"]}

    assert redact(value) == {
        "headers": {"Authorization": REDACTED, "accept": "*/*"},
        "password": REDACTED,
        "items": [f"Bearer {REDACTED}"],
    }


# --- Format, level, routing --------------------------------------------------------------------------------


def test_json_lines_carry_the_message_the_context_and_the_extra_fields(
    reconfigure: Reconfigure, capsys: pytest.CaptureFixture[str]
) -> None:
    reconfigure(LOG_FORMAT="json")
    token = request_id_var.set("req-json-1")
    try:
        logger.info("Delivered {message_id} in {attempts} attempts", message_id="m-1", attempts=2)
    finally:
        request_id_var.reset(token)

    (line,) = json_lines(capsys.readouterr().err)
    assert line["level"] == "INFO"
    assert line["message"] == "Delivered m-1 in 2 attempts"
    assert line["logger"] == __name__
    assert line["time"].endswith("Z")
    assert line["extra"] == {"message_id": "m-1", "attempts": 2, "request_id": "req-json-1"}


def test_text_locally_and_json_elsewhere_unless_log_format_says_otherwise(
    reconfigure: Reconfigure, capsys: pytest.CaptureFixture[str]
) -> None:
    reconfigure(APP_ENVIRONMENT="local")
    token = request_id_var.set("req-text-1")
    try:
        logger.info("human")
    finally:
        request_id_var.reset(token)
    text = capsys.readouterr().err
    assert " | INFO     | " in text
    assert "request_id=req-text-1 - human" in text

    reconfigure(
        APP_ENVIRONMENT="staging",
        JWT_SECRET=SAFE_SECRET,
        WEBHOOK_SECRET_KEYS=SAFE_SECRET_KEYS,
        CORS_ALLOW_ORIGINS="https://a.example",
        DOCS_ENABLED=False,
    )
    logger.info("machine")
    assert json_lines(capsys.readouterr().err)[0]["message"] == "machine"

    reconfigure(APP_ENVIRONMENT="local", LOG_FORMAT="json")
    logger.info("machine too")
    assert json_lines(capsys.readouterr().err)[0]["message"] == "machine too"


def test_log_level_filters_ours_and_the_libraries_lines(
    reconfigure: Reconfigure, capsys: pytest.CaptureFixture[str]
) -> None:
    reconfigure(LOG_LEVEL="WARNING", LOG_FORMAT="json")

    logger.info("not shown")
    logging.getLogger("celery.worker").info("not shown either")
    logger.warning("shown")
    logging.getLogger("celery.worker").warning("shown from %s", "celery")

    assert [line["message"] for line in json_lines(capsys.readouterr().err)] == ["shown", "shown from celery"]


def test_standard_logging_is_routed_with_its_origin_and_uvicorns_access_log_is_off(
    reconfigure: Reconfigure, capsys: pytest.CaptureFixture[str]
) -> None:
    reconfigure(LOG_FORMAT="json")

    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET / HTTP/1.1" 200')
    try:
        raise ValueError(f"token {JWT} rejected")
    except ValueError:
        logging.getLogger("sqlalchemy.pool").exception("Exception during reset")

    started, failed = json_lines(capsys.readouterr().err)
    assert started["message"] == "Started server process [42]"
    assert started["logger"] == __name__  # the code that logged, not the logging module
    assert failed["level"] == "ERROR"
    assert "ValueError" in failed["exception"]
    assert JWT not in failed["exception"]


def test_configuring_again_with_the_same_settings_changes_nothing(
    reconfigure: Reconfigure, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = reconfigure(LOG_FORMAT="json")
    seen: list[str] = []
    handler_id = logger.add(lambda message: seen.append(message.record["message"]), format="{message}")
    try:
        configure_logging(settings)
        configure_logging(settings)
        logger.info("once")
    finally:
        logger.remove(handler_id)

    assert [line["message"] for line in json_lines(capsys.readouterr().err)] == ["once"]
    assert seen == ["once"]  # other sinks survive a reconfiguration


# --- Real traffic ------------------------------------------------------------------------------------------


@pytest.fixture
def debug_app(reconfigure: Reconfigure, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    """Everything at DEBUG: SQLAlchemy logs each statement with its parameters, httpx each request."""
    # The requests run in db_session, on the suite's engine, built from the suite's settings (INFO), which hide
    # statement parameters; the app's own engine (DEBUG) would not.
    monkeypatch.setattr(engine.sync_engine, "hide_parameters", False)
    return build_app(LOG_LEVEL="DEBUG", LOG_FORMAT="json")


@pytest.fixture
async def debug_client(debug_app: FastAPI, db_session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    # db_session after debug_app: the connection is opened with SQL logging already on.
    async def session_of_the_test() -> AsyncIterator[AsyncSession]:
        yield db_session

    debug_app.dependency_overrides[get_session] = session_of_the_test
    async with serve(debug_app) as client:
        yield client


async def test_a_real_request_logs_no_credentials_and_every_line_carries_its_request_id(
    debug_client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    response = await debug_client.post(
        "/api/v1/webhooks",
        json={"url": "https://example.com/hooks", "events": ["order.created"]},
        headers={**auth_headers, REQUEST_ID_HEADER: "req-webhook-1"},
    )
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    output = capsys.readouterr().err

    assert secret not in output
    assert secret.removeprefix("whsec_") not in output
    assert auth_headers["Authorization"].removeprefix("Bearer ") not in output
    assert settings.JWT_SECRET.get_secret_value() not in output
    lines = json_lines(output)
    served = [line for line in lines if not line["logger"].startswith("httpx")]  # the test's own client
    sql = [line for line in served if line["logger"].startswith("sqlalchemy")]
    # The INSERT's parameters were logged (so the checks above mean something); the secret went in sealed.
    assert any("https://example.com/hooks" in line["message"] for line in sql)
    assert all(line["extra"]["request_id"] == "req-webhook-1" for line in served)
    access = next(line for line in served if line["logger"] == "app.web.middleware.request_context")
    assert access["extra"]["method"] == "POST"
    assert access["extra"]["route"] == "/api/v1/webhooks"
    assert access["extra"]["status"] == 201
    assert access["extra"]["client_sub"] == "client-a"
    assert isinstance(access["extra"]["duration_ms"], float)


async def test_an_outgoing_signed_webhook_call_logs_no_secret_signature_or_token(
    reconfigure: Reconfigure, webhook_client: WebhookClient, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    reconfigure(LOG_LEVEL="DEBUG", LOG_FORMAT="json")
    secret = generate_secret()
    message = WebhookMessage(id="msg_1", event="order.created", payload={"n": 1}, created_at=utcnow())
    url = receiver.url()
    outcome = await webhook_client.deliver(f"{url}?access_token={JWT}", sealed(secret), message, 5.0)
    (request,) = receiver.wait_for(1, timeout=5)
    assert outcome.succeeded

    output = capsys.readouterr().err
    assert f"{url}?access_token={REDACTED} " in output  # the call was logged, scrubbed
    assert JWT not in output
    assert secret.removeprefix("whsec_") not in output
    assert request.headers["webhook-signature"].removeprefix("v1,") not in output
