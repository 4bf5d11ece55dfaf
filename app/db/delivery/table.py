import uuid
from datetime import datetime

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.base.base_table import BaseTable
from app.db.delivery.model import Delivery


class DeliveriesTable(BaseTable[Delivery]):
    async def latest_per_webhook(self, message_id: uuid.UUID) -> list[Delivery]:
        """The most recent attempt for each webhook the message went to."""
        statement = (
            select(Delivery)
            .where(col(Delivery.message_id) == message_id)
            .distinct(col(Delivery.webhook_id))
            .order_by(col(Delivery.webhook_id), col(Delivery.attempt).desc())
        )
        return list((await self.session.scalars(statement)).all())

    async def overdue_retries(self, due_before: datetime, limit: int) -> list[Delivery]:
        """Latest attempts whose scheduled retry never ran (its task was lost)."""
        later = aliased(Delivery)
        newer_attempt = exists().where(
            and_(
                col(later.message_id) == col(Delivery.message_id),
                col(later.webhook_id) == col(Delivery.webhook_id),
                col(later.attempt) > col(Delivery.attempt),
            )
        )
        statement = (
            select(Delivery)
            .where(col(Delivery.next_attempt_at) < due_before, ~newer_attempt)
            .order_by(col(Delivery.next_attempt_at))
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())

    async def purge_created_before(self, cutoff: datetime) -> int:
        statement = delete(Delivery).where(col(Delivery.created_at) < cutoff).returning(col(Delivery.id))
        return len((await self.session.scalars(statement)).all())
