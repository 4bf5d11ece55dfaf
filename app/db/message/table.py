import uuid
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlmodel import col

from app.base.base_table import BaseTable
from app.db.delivery.model import Delivery
from app.db.message.model import Message, MessageStatus


class MessagesTable(BaseTable[Message]):
    async def lock(self, id: uuid.UUID) -> Message | None:
        """The message, locked until the transaction ends: its delivery results are recorded one at a time."""
        statement = (
            select(Message).where(col(Message.id) == id).with_for_update().execution_options(populate_existing=True)
        )
        return (await self.session.scalars(statement)).first()

    async def stranded_ids(self, pending_before: datetime, delivering_before: datetime, limit: int) -> list[uuid.UUID]:
        """Messages whose fan-out never ran or died before recording anything, oldest first.

        Pending ones: the enqueue after commit failed (e.g. Redis was down). Delivering ones without a
        single delivery row: the worker died mid-fan-out.
        """
        no_deliveries = ~exists().where(col(Delivery.message_id) == col(Message.id))
        statement = (
            select(col(Message.id))
            .where(
                or_(
                    and_(col(Message.status) == MessageStatus.PENDING, col(Message.updated_at) < pending_before),
                    and_(
                        col(Message.status) == MessageStatus.DELIVERING,
                        col(Message.updated_at) < delivering_before,
                        no_deliveries,
                    ),
                )
            )
            .order_by(col(Message.updated_at))
            .limit(limit)
        )
        return list((await self.session.scalars(statement)).all())
