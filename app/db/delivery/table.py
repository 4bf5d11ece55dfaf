import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlmodel import col

from app.db.base_table import BaseTable
from app.db.delivery.model import Delivery


class DeliveriesTable(BaseTable[Delivery]):
    model = Delivery

    async def latest_per_webhook(self, message_id: uuid.UUID) -> list[Delivery]:
        """The most recent attempt for each webhook the message went to."""
        statement = (
            select(Delivery)
            .where(col(Delivery.message_id) == message_id)
            .distinct(col(Delivery.webhook_id))
            .order_by(col(Delivery.webhook_id), col(Delivery.attempt).desc())
        )
        return list((await self.session.scalars(statement)).all())

    async def clear_scheduled(self, message_id: uuid.UUID, webhook_ids: Sequence[uuid.UUID]) -> None:
        """These webhooks' earlier attempts of the message no longer wait for a retry: later ones are recorded.

        Keeps `next_attempt_at` on the latest attempt only, which is what lets overdue_retries read the
        partial index alone. One statement for any number of webhooks.
        """
        if not webhook_ids:
            return
        statement = (
            update(Delivery)
            .where(
                col(Delivery.message_id) == message_id,
                col(Delivery.webhook_id).in_(webhook_ids),
                col(Delivery.next_attempt_at).is_not(None),
            )
            .values(next_attempt_at=None)
        )
        await self.session.execute(statement)

    async def postpone(self, message_id: uuid.UUID, webhook_id: uuid.UUID, due_at: datetime) -> None:
        """The retry the webhook's latest attempt waits for is now due at `due_at` (it was deferred)."""
        statement = (
            update(Delivery)
            .where(
                col(Delivery.message_id) == message_id,
                col(Delivery.webhook_id) == webhook_id,
                col(Delivery.next_attempt_at).is_not(None),
            )
            .values(next_attempt_at=due_at)
        )
        await self.session.execute(statement)

    async def schedule_redelivery(self, deliveries: Sequence[Delivery], due_at: datetime, attempts: int) -> None:
        """Mark each (latest, failed) attempt as waiting for a new series of `attempts` attempts, due at `due_at`.

        The marks let housekeeping re-queue a retry whose enqueue was lost, with the same budget.
        """
        for delivery in deliveries:
            delivery.next_attempt_at = due_at
            delivery.last_attempt = delivery.attempt + attempts
        await self.session.flush()

    async def overdue_retries(self, due_before: datetime, limit: int) -> list[Delivery]:
        """Attempts whose scheduled retry never ran (its task was lost), locked until the transaction ends.

        Only a webhook's latest attempt carries next_attempt_at (clear_scheduled), so this reads the
        partial index deliveries_next_attempt_idx alone. Rows locked by a worker recording the next
        attempt right now are skipped: that retry is not lost.
        """
        statement = (
            select(Delivery)
            .where(col(Delivery.next_attempt_at) < due_before)
            .order_by(col(Delivery.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(statement)).all())

    async def reschedule(self, ids: Sequence[uuid.UUID], due_at: datetime) -> None:
        """Push the scheduled retry of these attempts to `due_at` (housekeeping has just re-queued them)."""
        if not ids:
            return
        statement = update(Delivery).where(col(Delivery.id).in_(ids)).values(next_attempt_at=due_at)
        await self.session.execute(statement)

    async def purge_created_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` rows created before `cutoff`; returns how many. Call again until it is < limit."""
        batch = select(col(Delivery.id)).where(col(Delivery.created_at) < cutoff).limit(limit)
        statement = (
            delete(Delivery)
            .where(col(Delivery.id).in_(batch.scalar_subquery()))
            # No ORM bookkeeping: it would fetch every deleted id back (RETURNING).
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount
