import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
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

    # Endpoint health (app/api/messaging/endpoint_health.py). A row is written only when its state changes,
    # so a webhook that keeps succeeding or keeps failing costs no row lock per attempt.

    async def judge(
        self,
        healthy: Sequence[uuid.UUID],
        failing: Sequence[uuid.UUID],
        gone: Sequence[uuid.UUID],
        at: datetime,
        failing_before: datetime,
    ) -> list[tuple[uuid.UUID, DisabledReason]]:
        """Apply attempts' verdicts in one UPDATE: a 2xx ends a failing streak, a failure starts one (unless one
        runs), 410 Gone disables the webhook, and so does a streak running since before `failing_before`.
        Returns the webhooks it disabled, with why.

        One statement, which locks its rows in id order (a subquery FOR NO KEY UPDATE): transactions
        recording attempts to the same webhooks at once wait for each other but cannot deadlock, as separate
        statements (streaks first, then disabling) could, each locking its own subset.
        """
        judged = [*healthy, *failing, *gone]
        if not judged:
            return []
        webhook_id, failing_since, active = col(Webhook.id), col(Webhook.failing_since), col(Webhook.active)
        is_healthy = webhook_id.in_(healthy)
        unhealthy = webhook_id.in_([*failing, *gone])
        disable_gone = and_(active.is_(True), webhook_id.in_(gone))
        disable_failing = and_(active.is_(True), webhook_id.in_(failing), failing_since <= failing_before)
        disabling = or_(disable_gone, disable_failing)
        changing = or_(
            and_(is_healthy, failing_since.is_not(None)), and_(unhealthy, failing_since.is_(None)), disabling
        )
        # FOR NO KEY UPDATE, the lock the UPDATE itself takes: FOR UPDATE would also wait for the KEY SHARE
        # locks that every transaction inserting deliveries holds on their webhooks until it commits, and
        # two recordings each waiting for the other's would deadlock.
        locked = (
            select(webhook_id)
            .where(webhook_id.in_(judged), col(Webhook.deleted_at).is_(None), changing)
            .order_by(webhook_id)
            .with_for_update(key_share=True)
        )
        # Every SET expression reads the row as it was before this statement.
        statement = (
            update(Webhook)
            .where(webhook_id.in_(locked.scalar_subquery()))
            .values(
                failing_since=case((is_healthy, None), else_=func.coalesce(failing_since, at)),
                active=case((disabling, False), else_=active),
                disabled_reason=case(
                    (disable_gone, DisabledReason.GONE.value),
                    (disable_failing, DisabledReason.FAILING.value),
                    else_=col(Webhook.disabled_reason),
                ),
                disabled_at=case((disabling, at), else_=col(Webhook.disabled_at)),
                updated_at=case((disabling, at), else_=col(Webhook.updated_at)),
            )
            .returning(webhook_id, col(Webhook.disabled_reason), col(Webhook.disabled_at))
            .execution_options(synchronize_session=False)
        )
        rows = (await self.session.execute(statement)).all()
        return [(row[0], DisabledReason(row[1])) for row in rows if row[1] is not None and row[2] == at]

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
            .with_for_update(key_share=True)  # as in judge
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
