"""Every list endpoint answers a malformed cursor with 422, never a 500, and any cursor of the documented shape
with a page."""

import httpx
import pytest

from tests.db.test_cursor import KEY

OUT_OF_RANGE = f"{'9' * 17}.{KEY}"  # a timestamp beyond the cursor's 16 digits


@pytest.mark.parametrize("path", ["/api/v1/webhooks", "/api/v1/messages"])
async def test_out_of_range_cursor_is_422(client: httpx.AsyncClient, auth_headers: dict[str, str], path: str) -> None:
    response = await client.get(path, params={"cursor": OUT_OF_RANGE}, headers=auth_headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in response.json()["errors"]] == [["query", "cursor"]]


@pytest.mark.parametrize("cursor", [f"{'9' * 16}.{KEY}", f"-{'9' * 16}.{'0' * 32}"])
@pytest.mark.parametrize("path", ["/api/v1/webhooks", "/api/v1/messages"])
async def test_any_cursor_of_the_documented_shape_is_a_page(
    client: httpx.AsyncClient, auth_headers: dict[str, str], path: str, cursor: str
) -> None:
    response = await client.get(path, params={"cursor": cursor}, headers=auth_headers)
    assert response.status_code == 200, response.text
