import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlmodel import col

from app.db.base_table import BaseTable
from app.db.webhook.model import DisabledReason, Webhook


class WebhooksTable(BaseTable[Webhook]):
    model = Webhook

    async def subscribed(self, client_id: str, event: str) -> list[Webhook]:
        """The client's live webhooks subscribed to `event`, the disabled ones included (they are sent
        nothing, but their messages are recorded as not sent)."""
        statement = select(Webhook).where(
            col(Webhook.client_id) == client_id,
            col(Webhook.deleted_at).is_(None),
            col(Webhook.events).any_() == event,
        )
        return list((await self.session.scalars(statement)).all())

    async def lock_owned(self, id: uuid.UUID, client_id: str) -> Webhook | None:
        """The client's live webhook `id`, locked (FOR UPDATE) until the transaction ends."""
        statement = (
            select(Webhook)
            .where(col(Webhook.id) == id, col(Webhook.client_id) == client_id, col(Webhook.deleted_at).is_(None))
            .with_for_update()
        )
        return (await self.session.scalars(statement)).first()

    async def not_sealed_with(self, key_id: str, limit: int) -> list[Webhook]:
        """Up to `limit` webhooks (deleted ones too) with a secret sealed under another key, locked (FOR UPDATE)."""
        previous = col(Webhook.previous_secret_key_id)
        statement = (
            select(Webhook)
            .where(or_(col(Webhook.secret_key_id) != key_id, and_(previous.is_not(None), previous != key_id)))
            .order_by(col(Webhook.id))
            .limit(limit)
            .with_for_update()
        )
        return list((await self.session.scalars(statement)).all())

    # Endpoint health (app/api/messaging/endpoint_health.py). Each statement writes the row only when its
    # state changes, so a webhook that keeps succeeding or keeps failing costs no row lock per attempt.

    async def clear_failing(self, id: uuid.UUID) -> None:
        """The endpoint answered 2xx: no failing streak any more."""
        await self._set(id, col(Webhook.failing_since).is_not(None), failing_since=None)

    async def mark_failing(self, id: uuid.UUID, at: datetime) -> None:
        """An attempt failed: the streak starts at `at` unless one is already running."""
        await self._set(id, col(Webhook.failing_since).is_(None), failing_since=at)

    async def disable(
        self, id: uuid.UUID, reason: DisabledReason, at: datetime, *, failing_before: datetime | None = None
    ) -> bool:
        """Disable the webhook, if active (and failing since before `failing_before`, if given); True if it was."""
        conditions: list[ColumnElement[bool]] = [col(Webhook.active).is_(True)]
        if failing_before is not None:
            conditions.append(col(Webhook.failing_since) <= failing_before)
        return await self._set(id, *conditions, active=False, disabled_reason=reason, disabled_at=at, updated_at=at)

    async def _set(self, id: uuid.UUID, *conditions: ColumnElement[bool], **values: object) -> bool:
        statement = (
            update(Webhook)
            .where(col(Webhook.id) == id, col(Webhook.deleted_at).is_(None), *conditions)
            .values(**values)
            .returning(col(Webhook.id))
            .execution_options(synchronize_session=False)
        )
        return (await self.session.scalar(statement)) is not None
