"""WebhookService paths the HTTP tests cannot reach deterministically: when the target check runs, and an
update racing a soft delete."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.webhook.models import WebhookCreate, WebhookUpdate
from app.api.webhook.service import WebhookService
from app.clients.webhooks.target import TargetGuard
from app.core.exceptions import NotFoundError
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable
from tests.support.sealing import KEYRING


class RecordingGuard(TargetGuard):
    """Each target check (a DNS lookup) records how many SQL statements the use case had sent before it."""

    def __init__(self, statements: list[str]) -> None:
        super().__init__(allow_private=True)
        self.statements = statements
        self.checks: list[int] = []

    async def check(self, url: str) -> None:
        self.checks.append(len(self.statements))
        await super().check(url)


@pytest.fixture
def guard(statements: list[str]) -> RecordingGuard:
    return RecordingGuard(statements)


@pytest.fixture
def service(db_session: AsyncSession, guard: RecordingGuard) -> WebhookService:
    return WebhookService(db_session, guard, KEYRING, timedelta(hours=24))


@pytest.fixture
def target_checks(guard: RecordingGuard) -> list[int]:
    return guard.checks


def new_webhook(**changes: Any) -> WebhookCreate:
    return WebhookCreate.model_validate({"url": "https://example.com/a", "events": ["order.created"], **changes})


async def test_create_checks_the_target_before_any_database_work(
    service: WebhookService, statements: list[str], target_checks: list[int]
) -> None:
    statements.clear()
    await service.create("client-a", new_webhook())
    assert target_checks == [0]


async def test_update_checks_the_target_before_reading_the_webhook(
    service: WebhookService, statements: list[str], target_checks: list[int]
) -> None:
    created = await service.create("client-a", new_webhook())
    statements.clear()
    target_checks.clear()

    updated = await service.update("client-a", created.id, WebhookUpdate(url="https://example.com/b"))

    assert target_checks == [0]  # no transaction is open while DNS answers
    assert updated.url == "https://example.com/b"


async def test_update_without_url_checks_no_target(service: WebhookService, target_checks: list[int]) -> None:
    created = await service.create("client-a", new_webhook())
    target_checks.clear()
    await service.update("client-a", created.id, WebhookUpdate(active=False))
    assert target_checks == []


async def test_update_reads_the_webhook_once(service: WebhookService, statements: list[str]) -> None:
    created = await service.create("client-a", new_webhook())
    statements.clear()

    await service.update("client-a", created.id, WebhookUpdate(description="d"))

    before_writing = statements[: next(i for i, s in enumerate(statements) if s.lstrip().startswith("UPDATE"))]
    assert len([s for s in before_writing if "FROM webhooks" in s]) == 1, before_writing


async def test_update_racing_a_soft_delete_neither_fails_nor_revives_the_webhook(
    service: WebhookService, db_session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await service.create("client-a", new_webhook(description="before"))
    read = service.webhooks.first_by

    async def read_then_deleted(**filters: Any) -> Webhook | None:
        webhook = await read(**filters)
        # A DELETE /webhooks/{id} lands right after this read.
        assert await WebhooksTable(db_session).soft_delete(created.id)
        return webhook

    monkeypatch.setattr(service.webhooks, "first_by", read_then_deleted)

    updated = await service.update("client-a", created.id, WebhookUpdate(description="after"))

    assert updated.description == "after"
    monkeypatch.undo()
    assert await WebhooksTable(db_session).first_or_default(created.id) is None  # still deleted
    with pytest.raises(NotFoundError):
        await service.update("client-a", created.id, WebhookUpdate(description="again"))


async def test_update_changes_only_the_fields_sent(service: WebhookService) -> None:
    created = await service.create("client-a", new_webhook(description="keep", events=["a.b", "c.d"]))

    updated = await service.update("client-a", created.id, WebhookUpdate.model_validate({"active": False}))
    assert (updated.url, updated.events, updated.description, updated.active) == (
        created.url,
        created.events,
        "keep",
        False,
    )
    cleared = await service.update("client-a", created.id, WebhookUpdate.model_validate({"description": None}))
    assert cleared.description is None
    assert cleared.updated_at > created.updated_at


async def test_update_of_another_clients_webhook_is_not_found(service: WebhookService) -> None:
    created = await service.create("client-b", new_webhook())
    with pytest.raises(NotFoundError):
        await service.update("client-a", created.id, WebhookUpdate(active=False))
    with pytest.raises(NotFoundError):
        await service.update("client-a", uuid.uuid4(), WebhookUpdate(active=False))
