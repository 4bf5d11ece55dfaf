import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
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

    async def clear_failing(self, ids: Sequence[uuid.UUID]) -> None:
        """The endpoints answered 2xx: no failing streak any more."""
        await self._set(ids, col(Webhook.failing_since).is_not(None), failing_since=None)

    async def mark_failing(self, ids: Sequence[uuid.UUID], at: datetime) -> None:
        """Attempts failed: each streak starts at `at` unless one is already running."""
        await self._set(ids, col(Webhook.failing_since).is_(None), failing_since=at)

    async def disable(
        self, ids: Sequence[uuid.UUID], reason: DisabledReason, at: datetime, *, failing_before: datetime | None = None
    ) -> list[uuid.UUID]:
        """Disable the active ones of these webhooks (failing since before `failing_before`, if given); returns
        the ids it disabled."""
        conditions: list[ColumnElement[bool]] = [col(Webhook.active).is_(True)]
        if failing_before is not None:
            conditions.append(col(Webhook.failing_since) <= failing_before)
        return await self._set(ids, *conditions, active=False, disabled_reason=reason, disabled_at=at, updated_at=at)

    async def _set(
        self, ids: Sequence[uuid.UUID], *conditions: ColumnElement[bool], **values: object
    ) -> list[uuid.UUID]:
        """One UPDATE for all of `ids`, whatever their number; rows are locked in id order (a subquery FOR
        UPDATE), so two transactions updating the same webhooks cannot deadlock. Nothing for no ids."""
        if not ids:
            return []
        locked = (
            select(col(Webhook.id))
            .where(col(Webhook.id).in_(ids), col(Webhook.deleted_at).is_(None), *conditions)
            .order_by(col(Webhook.id))
            .with_for_update()
        )
        statement = (
            update(Webhook)
            .where(col(Webhook.id).in_(locked.scalar_subquery()))
            .values(**values)
            .returning(col(Webhook.id))
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.scalars(statement)).all())

    async def lock_client(self, client_id: str) -> None:
        """Serialise changes to the set of the client's webhooks until the transaction ends (an advisory lock)."""
        await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(client_id, 0))))
