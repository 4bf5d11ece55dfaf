"""Bad input to the messages API: 422 problem+json naming the offending field; nothing stored or queued."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.validation import JSON_MAX_DEPTH
from app.db.message.table import MessagesTable
from tests.api.conftest import MessageFactory
from tests.support.fakes import RecordingQueue
from tests.support.problems import assert_field_error

MESSAGES = "/api/v1/messages"
A_UUID = "6f1c2a1e-5d4b-4c3a-9e8f-7a6b5c4d3e2f"


@pytest.fixture
async def nothing_accepted(queue: RecordingQueue, db_session: AsyncSession) -> AsyncIterator[None]:
    """After the test: no message stored for client-a and nothing queued."""
    yield
    assert queue.fan_outs == []
    assert await MessagesTable(db_session).all_count(client_id="client-a") == 0


BAD_EVENTS = ["Upper.Case", "has space", "", "order.", ".order", "order..created", "order-created", "x" * 101]


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize("event", BAD_EVENTS)
async def test_create_rejects_bad_event_name(
    client: httpx.AsyncClient, auth_headers: dict[str, str], event: str
) -> None:
    response = await client.post(MESSAGES, json={"event": event, "payload": {}}, headers=auth_headers)
    assert_field_error(response, ["body", "event"])


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize("payload", [[], [1, 2], "a string", 42, None, True])
async def test_create_rejects_payload_that_is_not_an_object(
    client: httpx.AsyncClient, auth_headers: dict[str, str], payload: Any
) -> None:
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": payload}, headers=auth_headers)
    assert_field_error(response, ["body", "payload"])


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize(("body", "field"), [({"payload": {}}, "event"), ({"event": "a.b"}, "payload")])
async def test_create_requires_event_and_payload(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    errors = assert_field_error(await client.post(MESSAGES, json=body, headers=auth_headers), ["body", field])
    assert errors[0]["type"] == "missing"


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize("extra", [{"status": "delivered"}, {"id": A_UUID}, {"client_id": "client-b"}])
async def test_create_rejects_extra_fields(
    client: httpx.AsyncClient, auth_headers: dict[str, str], extra: dict[str, Any]
) -> None:
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": {}, **extra}, headers=auth_headers)
    errors = assert_field_error(response, ["body", next(iter(extra))])
    assert errors[0]["type"] == "extra_forbidden"


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize(
    "key",
    ["x" * 256, "has space", " leading", "tab\there", "\x01", "\x7f", ""],
    ids=["too-long", "space", "leading-space", "tab", "control", "del", "empty"],
)
async def test_create_rejects_bad_idempotency_key(
    client: httpx.AsyncClient, auth_headers: dict[str, str], key: str
) -> None:
    headers = {**auth_headers, "Idempotency-Key": key}
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": {}}, headers=headers)
    assert_field_error(response, ["header", "Idempotency-Key"])


@pytest.mark.usefixtures("nothing_accepted")
async def test_create_rejects_non_ascii_idempotency_key(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in auth_headers.items()]
    headers.append((b"Idempotency-Key", "clé".encode("latin-1")))
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": {}}, headers=headers)
    assert_field_error(response, ["header", "Idempotency-Key"])


@pytest.mark.parametrize("limit", ["0", "101", "-5", "many"])
async def test_list_rejects_bad_limit(client: httpx.AsyncClient, auth_headers: dict[str, str], limit: str) -> None:
    assert_field_error(await client.get(MESSAGES, params={"limit": limit}, headers=auth_headers), ["query", "limit"])


@pytest.mark.parametrize("status", ["unknown", "DELIVERED", "succeeded", ""])
async def test_list_rejects_invalid_status_filter(
    client: httpx.AsyncClient, auth_headers: dict[str, str], status: str
) -> None:
    response = await client.get(MESSAGES, params={"status": status}, headers=auth_headers)
    assert_field_error(response, ["query", "status"])


@pytest.mark.parametrize("event", ["Order.Created", "has space", "order."])
async def test_list_rejects_invalid_event_filter(
    client: httpx.AsyncClient, auth_headers: dict[str, str], event: str
) -> None:
    response = await client.get(MESSAGES, params={"event": event}, headers=auth_headers)
    assert_field_error(response, ["query", "event"])


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_CURSORS = ["garbage!", _cursor({"a": 1}), _cursor(["yesterday", A_UUID]), _cursor(["2026-01-01T00:00:00Z", "1"])]


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=range(len(BAD_CURSORS)))
async def test_lists_reject_bad_cursor(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory, cursor: str
) -> None:
    created = await create_message()
    for path in (MESSAGES, f"{MESSAGES}/{created['id']}/deliveries"):
        response = await client.get(path, params={"cursor": cursor}, headers=auth_headers)
        assert_field_error(response, ["query", "cursor"])


async def test_deliveries_list_rejects_bad_limit(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_message: MessageFactory
) -> None:
    created = await create_message()
    for limit in ("0", "101"):
        response = await client.get(
            f"{MESSAGES}/{created['id']}/deliveries", params={"limit": limit}, headers=auth_headers
        )
        assert_field_error(response, ["query", "limit"])


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/deliveries"), ("POST", "/redeliver")], ids=["get", "list", "redo"]
)
@pytest.mark.parametrize("message_id", ["not-a-uuid", "42", A_UUID + "0"])
async def test_bad_uuid_in_path_is_422(
    client: httpx.AsyncClient, auth_headers: dict[str, str], method: str, suffix: str, message_id: str
) -> None:
    response = await client.request(method, f"{MESSAGES}/{message_id}{suffix}", headers=auth_headers)
    assert_field_error(response, ["path", "message_id"])


# Raw JSON text: Python's json module accepts all of these, PostgreSQL's JSONB refuses them (a 500 if let through).
UNSTORABLE_PAYLOADS = {
    "nan": '{"x": NaN}',
    "infinity": '{"x": Infinity}',
    "minus-infinity": '{"x": [1, {"y": -Infinity}]}',
    "overflows-to-infinity": '{"x": 1e400}',
    "nul-in-value": '{"x": "secret\\u0000"}',
    "nul-in-key": '{"secret\\u0000": 1}',
    "nul-nested": '{"x": [{"y": {"z": ["ok", "secret\\u0000"]}}]}',
    "nul-in-nested-key": '{"x": [{"secret\\u0000": 1}]}',
    "lone-surrogate-value": '{"x": "secret\\ud800"}',
    "lone-surrogate-key": '{"secret\\udfff": 1}',
    "lone-surrogate-nested": '{"x": {"y": [["secret\\udc00x"]]}}',
    # Deeper than Pydantic can serialise again (about 255 levels); the limit is far below that.
    "too-deep": '{"x": ' + "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH + "}",
    "far-too-deep": '{"x": ' + "[" * 300 + "]" * 300 + "}",
}


@pytest.mark.usefixtures("nothing_accepted")
@pytest.mark.parametrize("payload", UNSTORABLE_PAYLOADS.values(), ids=UNSTORABLE_PAYLOADS.keys())
async def test_create_rejects_payload_postgres_cannot_store(
    client: httpx.AsyncClient, auth_headers: dict[str, str], payload: str
) -> None:
    headers = {**auth_headers, "content-type": "application/json"}
    content = f'{{"event": "a.b", "payload": {payload}}}'
    errors = assert_field_error(await client.post(MESSAGES, content=content, headers=headers), ["body", "payload"])
    assert [error["loc"] for error in errors] == [["body", "payload"]]
    assert "secret" not in errors[0]["msg"]


async def test_create_accepts_payload_escapes_postgres_can_store(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    headers = {**auth_headers, "content-type": "application/json"}
    content = '{"event": "a.b", "payload": {"\\u00e9": "\\ud83d\\ude00", "n": -1.5, "c": "\\u0001"}}'
    response = await client.post(MESSAGES, content=content, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["payload"] == {"é": "😀", "n": -1.5, "c": "\x01"}


async def test_create_accepts_payload_nested_up_to_the_limit(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    nested: Any = "deepest"
    for _ in range(JSON_MAX_DEPTH - 1):  # the payload object itself is the first level
        nested = [nested]
    response = await client.post(MESSAGES, json={"event": "a.b", "payload": {"x": nested}}, headers=auth_headers)
    assert response.status_code == 202, response.text
    assert response.json()["payload"] == {"x": nested}


@pytest.mark.usefixtures("nothing_accepted")
async def test_huge_event_name_gets_a_small_answer_that_does_not_echo_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(MESSAGES, json={"event": "x" * 500_000, "payload": {}}, headers=auth_headers)
    assert_field_error(response, ["body", "event"])
    assert len(response.content) < 5000
    assert "x" * 101 not in response.text


@pytest.mark.usefixtures("nothing_accepted")
async def test_bad_event_name_is_not_echoed(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(MESSAGES, json={"event": "Not<script>", "payload": {}}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "event"])
    assert "lowercase dotted" in errors[0]["msg"]
    assert "script" not in response.text
