"""Walking the webhooks list with limit and next_cursor."""

import httpx

from tests.api.conftest import WebhookFactory
from tests.support.pages import item_ids, walk_pages
from tests.support.tokens import HeadersFactory

WEBHOOKS = "/api/v1/webhooks"


async def test_walk_visits_every_webhook_once_newest_first(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory
) -> None:
    created = []
    for n in range(25):
        created.append((await create_webhook(url=f"https://example.com/{n}"))["id"])
        if n % 5 == 0:  # other clients' rows in between must not show up or shift the pages
            await create_webhook(sub="client-b")

    pages = await walk_pages(client, WEBHOOKS, headers_for("client-a"), limit=7)

    assert [len(page) for page in pages] == [7, 7, 7, 4]
    assert item_ids(pages) == list(reversed(created))
    assert all("secret" not in item for page in pages for item in page)


async def test_exact_multiple_of_limit_ends_with_null_cursor(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = [(await create_webhook())["id"] for _ in range(6)]
    pages = await walk_pages(client, WEBHOOKS, auth_headers, limit=3)
    # A full last page costs no extra empty page: the repository fetches limit + 1 rows.
    assert [len(page) for page in pages] == [3, 3]
    assert item_ids(pages) == list(reversed(created))


async def test_deleted_webhooks_are_skipped_by_pagination(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory
) -> None:
    created = [(await create_webhook())["id"] for _ in range(10)]
    for webhook_id in created[::3]:
        assert (await client.delete(f"{WEBHOOKS}/{webhook_id}", headers=auth_headers)).status_code == 204
    live = [webhook_id for webhook_id in created if webhook_id not in created[::3]]

    pages = await walk_pages(client, WEBHOOKS, auth_headers, limit=4)

    assert item_ids(pages) == list(reversed(live))
    assert [len(page) for page in pages] == [4, 2]


async def test_a_cursor_never_reveals_another_clients_rows(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory
) -> None:
    """A cursor is only a position: replayed by client B, it pages through B's webhooks alone."""
    theirs = (await create_webhook(sub="client-b"))["id"]
    for _ in range(3):
        await create_webhook(sub="client-a")
    first = (await client.get(WEBHOOKS, params={"limit": 1}, headers=headers_for("client-a"))).json()
    assert first["next_cursor"] is not None

    replay = await client.get(WEBHOOKS, params={"cursor": first["next_cursor"]}, headers=headers_for("client-b"))

    assert replay.status_code == 200
    assert [item["id"] for item in replay.json()["items"]] == [theirs]
