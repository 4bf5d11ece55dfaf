"""Every list endpoint answers a malformed cursor with 422, never a 500."""

import httpx
import pytest

from tests.db.test_cursor import KEY, raw_cursor

OUT_OF_RANGE = raw_cursor(["9999-12-31T23:59:59-01:00", KEY])


@pytest.mark.parametrize("path", ["/api/v1/webhooks", "/api/v1/messages"])
async def test_out_of_range_cursor_is_422(client: httpx.AsyncClient, auth_headers: dict[str, str], path: str) -> None:
    response = await client.get(path, params={"cursor": OUT_OF_RANGE}, headers=auth_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "cursor"]]
