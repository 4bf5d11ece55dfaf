import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, exists, or_, select, update
from sqlmodel import col

from app.db.base_table import BaseTable
from app.db.delivery.model import Delivery
from app.db.message.model import Message, MessageStatus

FINISHED = (MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.PARTIALLY_FAILED)


class MessagesTable(BaseTable[Message]):
    model = Message

    async def lock(self, id: uuid.UUID, *, client_id: str | None = None) -> Message | None:
        """The message (of `client_id`, if given), locked until the transaction ends: changes to its
        status and delivery records are made one at a time. Waits for another holder of the lock at most the
        connection's lock_timeout (app/db/engine.py), then fails as lock_not_available."""
        statement = select(Message).where(col(Message.id) == id)
        if client_id is not None:
            statement = statement.where(col(Message.client_id) == client_id)
        statement = statement.with_for_update().execution_options(populate_existing=True)
        return (await self.session.scalars(statement)).first()

    async def stranded_ids(self, pending_before: datetime, delivering_before: datetime, limit: int) -> list[uuid.UUID]:
        """Messages whose fan-out never ran or died before recording anything, oldest first.

        Pending ones: the enqueue after commit failed (e.g. Redis was down). Delivering ones without a
        single delivery row nor a claim: the worker died mid-fan-out before fan-outs were claimed with a
        lease (take_over_lapsed handles claimed ones). Locked until the transaction ends, for
        mark_requeued; one a fan-out is claiming right now is skipped (it is not stranded).
        """
        no_deliveries = ~exists().where(col(Delivery.message_id) == col(Message.id))
        statement = (
            select(col(Message.id))
            .where(
                or_(
                    and_(col(Message.status) == MessageStatus.PENDING, col(Message.updated_at) < pending_before),
                    and_(
                        col(Message.status) == MessageStatus.DELIVERING,
                        col(Message.claimed_until).is_(None),  # a claimed one is taken over (take_over_lapsed)
                        col(Message.updated_at) < delivering_before,
                        no_deliveries,
                    ),
                )
            )
            .order_by(col(Message.updated_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.scalars(statement)).all())

    async def mark_requeued(self, ids: Sequence[uuid.UUID], at: datetime) -> None:
        """Housekeeping has just re-queued these stranded messages: pending again, as of `at`.

        So they count as stranded again only once MESSAGE_REQUEUE_AFTER_SECONDS have passed, and the
        fan-out re-queued for a stalled one (delivering, nothing recorded) can claim it.
        """
        if not ids:
            return
        statement = update(Message).where(col(Message.id).in_(ids)).values(status=MessageStatus.PENDING, updated_at=at)
        await self.session.execute(statement)

    async def release_idempotency_key(self, id: uuid.UUID) -> None:
        """The message's Idempotency-Key has expired: free it for a new message (the message stays)."""
        statement = update(Message).where(col(Message.id) == id).values(idempotency_key=None, request_hash=None)
        await self.session.execute(statement)

    async def purge_finished_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` finished messages last changed before `cutoff` (their deliveries go with them,
        ON DELETE CASCADE); returns how many. One bounded statement, read from messages_finished_idx; a
        message locked right now (being redelivered) is skipped."""
        batch = (
            select(col(Message.id))
            .where(col(Message.status).in_(FINISHED), col(Message.updated_at) < cutoff)
            .order_by(col(Message.updated_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            delete(Message)
            .where(col(Message.id).in_(batch.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount

    async def renew_claim(self, id: uuid.UUID, token: uuid.UUID, until: datetime) -> None:
        """Extend the lease of the claim `token` holds, if it still holds it."""
        statement = (
            update(Message)
            .where(col(Message.id) == id, col(Message.claim_token) == token)
            .values(claimed_until=until)
            .execution_options(synchronize_session=False)
        )
        await self.session.execute(statement)

    async def take_over_lapsed(self, now: datetime, until: datetime, limit: int) -> list[uuid.UUID]:
        """Unfinished fan-outs whose lease has lapsed (the holder died, or deferred attempts are due), oldest
        first: released from their holder and leased until `until`, so that other sweeps leave them alone
        while the fan-out re-queued for each takes them over. Rows locked right now are skipped."""
        lapsed = (
            select(col(Message.id))
            .where(col(Message.status) == MessageStatus.DELIVERING, col(Message.claimed_until) < now)
            .order_by(col(Message.claimed_until))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(Message)
            .where(col(Message.id).in_(lapsed.scalar_subquery()))
            .values(claim_token=None, claimed_until=until)
            .returning(col(Message.id))
            .execution_options(synchronize_session=False)
        )
        return list((await self.session.scalars(statement)).all())
