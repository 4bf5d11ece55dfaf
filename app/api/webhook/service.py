"""Webhooks: a client's delivery targets. Each use case commits once."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import PageOut, PageParams, page_out
from app.api.webhook.models import WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate
from app.clients.webhooks.signing import generate_secret
from app.clients.webhooks.target import TargetGuard, TargetRejectedError
from app.core.exceptions import ConflictError, NotFoundError, ValidationFailedError
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable


class WebhookService:
    def __init__(self, session: AsyncSession, targets: TargetGuard, max_per_client: int | None = None) -> None:
        self.session = session
        self.webhooks = WebhooksTable(session)
        self.targets = targets
        # Each message fans out to every subscribed webhook of its client: this bounds a fan-out.
        self.max_per_client = max_per_client

    async def create(self, client_id: str, data: WebhookCreate) -> WebhookCreated:
        await self._check_target(data.url)  # before any database work: no transaction waits on DNS
        if self.max_per_client is not None:
            await self.webhooks.lock_client(client_id)  # two registrations at once cannot both take the last place
            if await self.webhooks.all_count(client_id=client_id) >= self.max_per_client:
                raise ConflictError(
                    f"A client may have at most {self.max_per_client} webhooks; delete one to register another."
                )
        webhook = await self.webhooks.insert_model(
            Webhook(client_id=client_id, secret=generate_secret(), **data.model_dump())
        )
        await self.session.commit()
        return WebhookCreated.model_validate(webhook)

    async def list(self, client_id: str, page: PageParams) -> PageOut[WebhookRead]:
        return page_out(await self.webhooks.page(page.limit, page.cursor, client_id=client_id), WebhookRead)

    async def get(self, client_id: str, webhook_id: uuid.UUID) -> WebhookRead:
        return WebhookRead.model_validate(await self._owned(client_id, webhook_id))

    async def update(self, client_id: str, webhook_id: uuid.UUID, data: WebhookUpdate) -> WebhookRead:
        # The DNS lookup first, before any read: no transaction stays open while it waits.
        if data.url is not None:
            await self._check_target(data.url)
        webhook = await self._owned(client_id, webhook_id)
        # One read, then the changed instance is written: no second lookup that could miss the row.
        webhook.sqlmodel_update(data.model_dump(exclude_unset=True))
        await self.webhooks.update_model(webhook)
        await self.session.commit()
        return WebhookRead.model_validate(webhook)

    async def delete(self, client_id: str, webhook_id: uuid.UUID) -> None:
        await self._owned(client_id, webhook_id)
        await self.webhooks.soft_delete(webhook_id)
        await self.session.commit()

    async def _check_target(self, url: str) -> None:
        """Refuse targets that are unsafe to POST to, as an error of the `url` field like any other bad url."""
        try:
            await self.targets.check(url)
        except TargetRejectedError as exc:
            raise ValidationFailedError(exc.detail, field="url") from None

    async def _owned(self, client_id: str, webhook_id: uuid.UUID) -> Webhook:
        # Another client's webhook answers exactly like a missing one: no existence oracle.
        webhook = await self.webhooks.first_by(id=webhook_id, client_id=client_id)
        if webhook is None:
            raise NotFoundError(f"Webhook {webhook_id} not found.")
        return webhook
