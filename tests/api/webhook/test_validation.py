"""Bad input to the webhooks API: 422 problem+json naming the offending field, and nothing stored."""

import base64
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.deps import get_target_guard
from app.clients.webhooks.target import TargetGuard
from app.db.webhook.table import WebhooksTable
from tests.api.conftest import WebhookFactory
from tests.support.problems import assert_field_error, assert_problem

WEBHOOKS = "/api/v1/webhooks"
A_UUID = "6f1c2a1e-5d4b-4c3a-9e8f-7a6b5c4d3e2f"
GOOD: dict[str, Any] = {"url": "https://example.com/hooks", "events": ["order.created"]}


BAD_URLS = [
    "ftp://example.com/hooks",
    "not a url",
    "example.com/hooks",
    "https://",
    "http://example.com:99999/",
    "javascript:alert(1)",
    "https://exa mple.com/",
    "",
    "https://example.com/" + "a" * 2048,
]


@pytest.mark.parametrize("url", BAD_URLS)
async def test_create_rejects_bad_url(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession, url: str
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "url": url}, headers=auth_headers)
    assert_field_error(response, ["body", "url"])
    assert await WebhooksTable(db_session).all_count(client_id="client-a") == 0


async def test_create_requires_url(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(WEBHOOKS, json={"events": ["order.created"]}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "url"])
    assert errors[0]["type"] == "missing"


async def test_create_requires_events(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(WEBHOOKS, json={"url": GOOD["url"]}, headers=auth_headers)
    assert_field_error(response, ["body", "events"])


BAD_EVENTS = ["Upper.Case", "has space", "", "order.", ".order", "order..created", "1order", "order-created", "é.x"]


@pytest.mark.parametrize("event", BAD_EVENTS)
async def test_create_rejects_bad_event_name(
    client: httpx.AsyncClient, auth_headers: dict[str, str], event: str
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": ["order.created", event]}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "events"])
    assert "lowercase dotted" in errors[0]["msg"]


@pytest.mark.parametrize("event", ["order", "order.created", "a.b_c.d2", "x" * 100])
async def test_create_accepts_good_event_names(
    client: httpx.AsyncClient, auth_headers: dict[str, str], event: str
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": [event]}, headers=auth_headers)
    assert response.status_code == 201, response.text
    assert response.json()["events"] == [event]


async def test_create_rejects_overlong_event_name(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": ["x" * 101]}, headers=auth_headers)
    assert_field_error(response, ["body", "events"])


@pytest.mark.parametrize("events", [[], "order.created", None, [1]])
async def test_create_rejects_bad_events_list(
    client: httpx.AsyncClient, auth_headers: dict[str, str], events: Any
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": events}, headers=auth_headers)
    body = assert_problem(response, 422)
    assert body["errors"]
    assert all(error["loc"][:2] == ["body", "events"] for error in body["errors"])


async def test_create_rejects_too_many_events(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    events = [f"e.n{i}" for i in range(51)]
    assert_field_error(
        await client.post(WEBHOOKS, json={**GOOD, "events": events}, headers=auth_headers), ["body", "events"]
    )


async def test_create_rejects_extra_fields(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    for extra in ({"secret": "whsec_mine"}, {"active": False}, {"client_id": "client-b"}):
        response = await client.post(WEBHOOKS, json={**GOOD, **extra}, headers=auth_headers)
        errors = assert_field_error(response, ["body", next(iter(extra))])
        assert errors[0]["type"] == "extra_forbidden"


async def test_create_rejects_overlong_description(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "description": "d" * 501}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "description"])
    assert "at most 500 characters" in errors[0]["msg"]


@pytest.mark.parametrize("body", [[], "x", None])
async def test_create_rejects_a_body_that_is_not_an_object(
    client: httpx.AsyncClient, auth_headers: dict[str, str], body: Any
) -> None:
    assert_problem(await client.post(WEBHOOKS, json=body, headers=auth_headers), 422)


async def test_create_rejects_malformed_json(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    headers = {**auth_headers, "content-type": "application/json"}
    body = assert_problem(await client.post(WEBHOOKS, content=b'{"url": ', headers=headers), 422)
    assert body["errors"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": None}, "url"),
        ({"events": []}, "events"),
        ({"events": None}, "events"),
        ({"events": ["Bad.Name"]}, "events"),
        ({"active": None}, "active"),
        ({"active": "maybe"}, "active"),
        ({"active": 0}, "active"),  # strict: JSON has booleans, and the document says boolean
        ({"url": "http://[::::]/"}, "url"),
        ({"description": "nul \u0000 inside"}, "description"),
        ({"secret": "whsec_x"}, "secret"),
        ({"description": "d" * 501}, "description"),
    ],
)
async def test_patch_rejects_bad_changes(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_webhook: WebhookFactory,
    change: dict[str, Any],
    field: str,
) -> None:
    created = await create_webhook()
    response = await client.patch(f"{WEBHOOKS}/{created['id']}", json=change, headers=auth_headers)
    assert_field_error(response, ["body", field])
    unchanged = (await client.get(f"{WEBHOOKS}/{created['id']}", headers=auth_headers)).json()
    assert unchanged["url"] == created["url"]
    assert unchanged["events"] == created["events"]
    assert unchanged["active"] is True


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("webhook_id", ["not-a-uuid", "123", A_UUID[:-1]])
async def test_bad_uuid_in_path_is_422(
    client: httpx.AsyncClient, auth_headers: dict[str, str], method: str, webhook_id: str
) -> None:
    body = {"active": False} if method == "PATCH" else None
    response = await client.request(method, f"{WEBHOOKS}/{webhook_id}", json=body, headers=auth_headers)
    assert_field_error(response, ["path", "webhook_id"])


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", ""])
async def test_list_rejects_bad_limit(client: httpx.AsyncClient, auth_headers: dict[str, str], limit: str) -> None:
    response = await client.get(WEBHOOKS, params={"limit": limit}, headers=auth_headers)
    assert_field_error(response, ["query", "limit"])


@pytest.mark.parametrize("limit", ["1", "100"])
async def test_list_accepts_limit_bounds(client: httpx.AsyncClient, auth_headers: dict[str, str], limit: str) -> None:
    assert (await client.get(WEBHOOKS, params={"limit": limit}, headers=auth_headers)).status_code == 200


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_CURSORS = [
    "not a cursor!",
    "%%%",
    _b64(b"\xff\xfe not json"),
    _b64({"created_at": "2026-01-01T00:00:00+00:00", "id": A_UUID}),
    _b64(["2026-01-01T00:00:00+00:00"]),
    _b64(["2026-01-01T00:00:00+00:00", A_UUID, "extra"]),
    _b64(["not a time", A_UUID]),
    _b64(["2026-01-01T00:00:00", A_UUID]),  # naive timestamp
    _b64(["2026-01-01T00:00:00+00:00", "not-a-uuid"]),
    _b64([1767225600, A_UUID]),
    "x" * 513,
]


@pytest.mark.parametrize("cursor", BAD_CURSORS, ids=range(len(BAD_CURSORS)))
async def test_list_rejects_bad_cursor(client: httpx.AsyncClient, auth_headers: dict[str, str], cursor: str) -> None:
    response = await client.get(WEBHOOKS, params={"cursor": cursor}, headers=auth_headers)
    assert_field_error(response, ["query", "cursor"])


@pytest.fixture
def public_targets_only(app: FastAPI) -> None:
    """As outside local/test: webhook targets must be on the public internet (SSRF protection)."""
    app.dependency_overrides[get_target_guard] = lambda: TargetGuard(allow_private=False)


PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "https://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:192.168.0.1]/hook",
]


@pytest.mark.usefixtures("public_targets_only")
@pytest.mark.parametrize("url", PRIVATE_URLS)
async def test_private_targets_are_rejected_as_a_bad_url(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession, url: str
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "url": url}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "url"])
    assert "non-public" in errors[0]["msg"]
    assert await WebhooksTable(db_session).all_count(client_id="client-a") == 0


@pytest.mark.usefixtures("public_targets_only")
async def test_patch_to_a_private_target_is_rejected(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = await create_webhook(url="https://93.184.215.14/hook")  # a public address: no DNS needed
    path = f"{WEBHOOKS}/{created['id']}"

    response = await client.patch(path, json={"url": "http://127.0.0.1/"}, headers=auth_headers)

    assert_field_error(response, ["body", "url"])
    assert (await client.get(path, headers=auth_headers)).json()["url"] == "https://93.184.215.14/hook"


# Raw JSON escapes Python accepts but PostgreSQL cannot store in TEXT: a NUL and lone surrogates.
UNSTORABLE = {"nul": "\\u0000", "lone-high-surrogate": "\\ud800", "lone-low-surrogate": "\\udfff"}
UNSTORABLE_FIELDS = {
    "url": '{"url": "https://example.com/secret%s", "events": ["order.created"]}',
    "description": '{"url": "https://example.com/", "events": ["order.created"], "description": "secret%s"}',
    "events": '{"url": "https://example.com/", "events": ["order.created", "secret%s"]}',
}


def _raw_json(auth_headers: dict[str, str]) -> dict[str, str]:
    return {**auth_headers, "content-type": "application/json"}


@pytest.mark.parametrize("escape", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize("field", UNSTORABLE_FIELDS)
async def test_create_rejects_text_postgres_cannot_store(
    client: httpx.AsyncClient, auth_headers: dict[str, str], db_session: AsyncSession, field: str, escape: str
) -> None:
    content = UNSTORABLE_FIELDS[field] % escape
    response = await client.post(WEBHOOKS, content=content, headers=_raw_json(auth_headers))
    errors = assert_field_error(response, ["body", field])
    assert "secret" not in response.text
    assert all(error["loc"][:2] == ["body", field] for error in errors)
    assert await WebhooksTable(db_session).all_count(client_id="client-a") == 0


@pytest.mark.parametrize("escape", UNSTORABLE.values(), ids=UNSTORABLE.keys())
@pytest.mark.parametrize(
    ("field", "content"),
    [
        ("url", '{"url": "https://example.com/secret%s"}'),
        ("description", '{"description": "secret%s"}'),
        ("events", '{"events": ["secret%s"]}'),
    ],
)
async def test_patch_rejects_text_postgres_cannot_store(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_webhook: WebhookFactory,
    field: str,
    content: str,
    escape: str,
) -> None:
    created = await create_webhook(description="before")
    path = f"{WEBHOOKS}/{created['id']}"
    response = await client.patch(path, content=content % escape, headers=_raw_json(auth_headers))
    assert_field_error(response, ["body", field])
    assert "secret" not in response.text
    assert (await client.get(path, headers=auth_headers)).json() == {
        key: value for key, value in created.items() if key != "secret"
    }


async def test_patch_overlong_description_says_characters(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = await create_webhook()
    response = await client.patch(f"{WEBHOOKS}/{created['id']}", json={"description": "d" * 501}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "description"])
    assert "at most 500 characters" in errors[0]["msg"]


async def test_description_keeps_unicode_postgres_can_store(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    content = '{"url": "https://example.com/", "events": ["a.b"], "description": "caf\\u00e9 \\ud83d\\ude00 \\u0001"}'
    response = await client.post(WEBHOOKS, content=content, headers=_raw_json(auth_headers))
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "café 😀 \x01"


async def test_huge_event_name_gets_a_small_answer_that_does_not_echo_it(
    client: httpx.AsyncClient, auth_headers: dict[str, str]
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": ["x" * 500_000]}, headers=auth_headers)
    errors = assert_field_error(response, ["body", "events"])
    assert "at most 100 characters" in errors[0]["msg"]
    assert len(response.content) < 5000
    assert "x" * 101 not in response.text


async def test_bad_event_name_is_not_echoed(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "events": ["<b>secret</b>"]}, headers=auth_headers)
    assert_field_error(response, ["body", "events"])
    assert "secret" not in response.text


@pytest.mark.parametrize(
    "url",
    ["http://[::1]:8080/hook", "https://user:pw@example.com:65535/p?q=1#f", "http://10.0.0.1:0", "http://svc_a/x%20y"],
)
async def test_urls_the_document_admits_are_accepted(
    client: httpx.AsyncClient, auth_headers: dict[str, str], url: str
) -> None:
    response = await client.post(WEBHOOKS, json={**GOOD, "url": url}, headers=auth_headers)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "url", ["http://bücher.de/", "http://h:65536/", "http://example.com/a<b", "http://[fe80::1%25eth0]/"]
)
async def test_urls_outside_the_documented_pattern_are_refused(
    client: httpx.AsyncClient, auth_headers: dict[str, str], url: str
) -> None:
    assert_field_error(await client.post(WEBHOOKS, json={**GOOD, "url": url}, headers=auth_headers), ["body", "url"])
