"""The OpenAPI document states the rules the API enforces, so that a generated client or a fuzzer driven by it
meets no surprise (`make api-fuzz` runs Schemathesis against a live API; these check the document itself)."""

import re
from typing import Any

import pytest
from fastapi import FastAPI

from app.api.validation import EVENT_NAME_PATTERN, STORABLE_TEXT_PATTERN, URL_PATTERN
from app.db.cursor import KEYSET_CURSOR_PATTERN


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_event_names_urls_and_text_carry_their_patterns(document: dict[str, Any]) -> None:
    create = schema(document, "WebhookCreate")["properties"]
    assert create["url"]["pattern"] == URL_PATTERN
    assert create["events"]["items"]["pattern"] == EVENT_NAME_PATTERN
    assert create["description"]["anyOf"][0]["pattern"] == STORABLE_TEXT_PATTERN
    message = schema(document, "MessageCreate")["properties"]
    assert message["event"]["pattern"] == EVENT_NAME_PATTERN
    assert message["payload"]["propertyNames"] == {"pattern": STORABLE_TEXT_PATTERN}
    assert message["payload"]["additionalProperties"] == {"$ref": "#/components/schemas/StorableJsonValue"}


def test_patch_documents_null_only_where_it_is_accepted(document: dict[str, Any]) -> None:
    update = schema(document, "WebhookUpdate")["properties"]
    for name in ("url", "events", "active"):
        assert "anyOf" not in update[name], name
        assert "default" not in update[name], name
    assert {"type": "null"} in update["description"]["anyOf"]  # null clears it


def test_every_list_documents_its_cursor_shape(document: dict[str, Any]) -> None:
    lists = [
        operation
        for path in document["paths"].values()
        for method, operation in path.items()
        if method == "get" and any(p["name"] == "cursor" for p in operation.get("parameters", []))
    ]
    assert len(lists) == 3
    for operation in lists:
        (cursor,) = [p for p in operation["parameters"] if p["name"] == "cursor"]
        assert cursor["schema"]["anyOf"][0]["pattern"] == KEYSET_CURSOR_PATTERN


def test_every_api_operation_documents_the_503_with_retry_after(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for operation in item.values():
            answer = operation["responses"]["503"]
            assert "Retry-After" in answer["headers"]
            assert "400" not in operation["responses"]  # a body that is not UTF-8 is a 422 like any non-JSON


def test_the_url_pattern_is_a_regex_both_python_and_ecma_read_alike() -> None:
    # No look-arounds, named groups or Unicode classes: only what both dialects spell the same way.
    assert not re.search(r"\(\?[=!<P]|\\[pPdDwWsS]", URL_PATTERN)
