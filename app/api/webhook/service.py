"""Webhooks: a client's delivery targets. Each use case commits once."""

import uuid
from datetime import timedelta

from pydantic import MISSING
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.pagination import PageOut, PageParams, page_out
from app.api.webhook.models import (
    SecretRotation,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookSecretRotated,
    WebhookUpdate,
)
from app.clients.webhooks.signing import generate_secret
from app.clients.webhooks.target import TargetGuard, TargetRejectedError
from app.core.encryption import KeyRing
from app.core.exceptions import ConflictError, NotFoundError, ValidationFailedError
from app.core.time import utcnow
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable


class WebhookService:
    """`keyring` seals signing secrets before they are stored; `secret_overlap` is how long a rotated-out
    secret keeps signing deliveries, unless the rotation asks for another overlap; `max_per_client` bounds
    the webhooks of a client, and so each fan-out (each message goes to every subscribed webhook)."""

    def __init__(
        self,
        session: AsyncSession,
        targets: TargetGuard,
        keyring: KeyRing,
        secret_overlap: timedelta,
        max_per_client: int | None = None,
    ) -> None:
        self.session = session
        self.webhooks = WebhooksTable(session)
        self.targets = targets
        self.keyring = keyring
        self.secret_overlap = secret_overlap
        self.max_per_client = max_per_client

    async def create(self, client_id: str, data: WebhookCreate) -> WebhookCreated:
        await self._check_target(data.url)  # before any database work: no transaction waits on DNS
        if self.max_per_client is not None:
            await self.webhooks.lock_client(client_id)  # two registrations at once cannot both take the last place
            if await self.webhooks.all_count(client_id=client_id) >= self.max_per_client:
                raise ConflictError(
                    f"A client may have at most {self.max_per_client} webhooks; delete one to register another."
                )
        secret = generate_secret()
        webhook = Webhook(client_id=client_id, **data.model_dump())
        webhook.set_secret(self.keyring.seal(secret, context=webhook.secret_context))
        await self.webhooks.insert_model(webhook)
        await self.session.commit()
        return WebhookCreated.model_validate({**WebhookRead.model_validate(webhook).model_dump(), "secret": secret})

    async def rotate_secret(
        self, client_id: str, webhook_id: uuid.UUID, data: SecretRotation | None
    ) -> WebhookSecretRotated:
        """A new secret; the current one keeps signing deliveries (beside the new) until the overlap ends.
        A rotation during an overlap ends it: the secret rotated out before is dropped."""
        overlap = (
            self.secret_overlap
            if data is None or data.overlap_seconds is None
            else timedelta(seconds=data.overlap_seconds)
        )
        # Locked: two rotations at once must not both answer a secret when only one of them is kept.
        webhook = await self.webhooks.lock_owned(webhook_id, client_id)
        if webhook is None:
            raise NotFoundError(f"Webhook {webhook_id} not found.")
        secret = generate_secret()
        expires_at = utcnow() + overlap if overlap else None
        webhook.rotate_secret(self.keyring.seal(secret, context=webhook.secret_context), expires_at)
        await self.webhooks.update_model(webhook)
        await self.session.commit()
        return WebhookSecretRotated(secret=secret, previous_secret_expires_at=expires_at)

    async def list(self, client_id: str, page: PageParams) -> PageOut[WebhookRead]:
        return page_out(await self.webhooks.page(page.limit, page.cursor, client_id=client_id), WebhookRead)

    async def get(self, client_id: str, webhook_id: uuid.UUID) -> WebhookRead:
        return WebhookRead.model_validate(await self._owned(client_id, webhook_id))

    async def update(self, client_id: str, webhook_id: uuid.UUID, data: WebhookUpdate) -> WebhookRead:
        # The DNS lookup first, before any read: no transaction stays open while it waits.
        if data.url is not MISSING:
            await self._check_target(data.url)
        webhook = await self._owned(client_id, webhook_id)
        # One read, then the changed instance is written: no second lookup that could miss the row.
        changes = data.model_dump(exclude_unset=True)
        if "active" in changes:  # with its reason and time (app/db/webhook/model.py)
            webhook.set_active(changes.pop("active"), utcnow())
        webhook.sqlmodel_update(changes)
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
