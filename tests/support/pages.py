"""Walking a keyset-paged list endpoint to its end."""

from typing import Any

import httpx

Page = list[dict[str, Any]]


async def walk_pages(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], limit: int, **filters: str
) -> list[Page]:
    """Every page of the list at `path`, following next_cursor to its end; each page answered 200."""
    pages: list[Page] = []
    params: dict[str, Any] = {"limit": limit, **filters}
    while True:
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append(body["items"])
        if body["next_cursor"] is None:
            return pages
        assert len(pages) < 50, "next_cursor never ran out"
        params = {"limit": limit, **filters, "cursor": body["next_cursor"]}


def item_ids(pages: list[Page]) -> list[str]:
    """The ids of the items of `pages`, in order."""
    return [item["id"] for page in pages for item in page]
