"""Messages: accepted at once, delivered in the background. Each use case commits once."""

import hashlib
import json
import uuid
from datetime import timedelta

from loguru import logger
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.messaging.models import DeliveryRead, MessageCreate, MessageFilters, MessageRead, MessageSummary
from app.api.messaging.queue import DeliveryQueue
from app.api.pagination import PageOut, PageParams, page_out
from app.core.exceptions import ConflictError, NotFoundError
from app.core.time import utcnow
from app.db.delivery.model import DeliveryStatus
from app.db.delivery.table import DeliveriesTable
from app.db.message.model import Message, MessageStatus
from app.db.message.table import MessagesTable

IN_FLIGHT = (MessageStatus.PENDING, MessageStatus.DELIVERING)
DEFAULT_IDEMPOTENCY_KEY_TTL = timedelta(hours=24)


def request_hash(data: MessageCreate) -> str:
    """Fingerprint of a request body, to tell a retried request from a different one under the same key."""
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class MessagingService:
    def __init__(
        self,
        session: AsyncSession,
        queue: DeliveryQueue,
        max_attempts: int,
        idempotency_key_ttl: timedelta = DEFAULT_IDEMPOTENCY_KEY_TTL,
    ) -> None:
        self.session = session
        self.queue = queue
        self.max_attempts = max_attempts
        self.idempotency_key_ttl = idempotency_key_ttl
        self.messages = MessagesTable(session)
        self.deliveries = DeliveriesTable(session)

    async def create(self, client_id: str, data: MessageCreate, idempotency_key: str | None) -> MessageRead:
        fingerprint = request_hash(data) if idempotency_key is not None else None
        if idempotency_key is not None:
            existing = await self.messages.first_by(client_id=client_id, idempotency_key=idempotency_key)
            if existing is not None and existing.created_at > utcnow() - self.idempotency_key_ttl:
                return self._replay(existing, fingerprint)
            if existing is not None:  # honoured for its period only: now the key names a new message
                await self.messages.release_idempotency_key(existing.id)
        # The id and the timestamps are given rather than left to the model's default factories: for each
        # factory it calls, SQLModel's constructor inspects the factory's signature (4 % of a POST's instructions).
        now = utcnow()
        message = Message(
            id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            client_id=client_id,
            event=data.event,
            payload=data.payload,
            idempotency_key=idempotency_key,
            request_hash=fingerprint,
        )
        if idempotency_key is None:
            await self.messages.insert_model(message)  # no key, no race to lose: no savepoint (two round trips)
        else:
            try:
                async with self.session.begin_nested():
                    await self.messages.insert_model(message)
            except IntegrityError:
                # A concurrent request with the same key committed first: answer with its message.
                existing = await self.messages.first_by(client_id=client_id, idempotency_key=idempotency_key)
                if existing is None:
                    raise
                return self._replay(existing, fingerprint)
        await self.session.commit()
        # Only after the commit: a worker must find the row. If this fails the message stays
        # pending and Celery beat re-queues it, so nothing accepted is lost.
        try:
            await self.queue.fan_out(message.id)
        except Exception as exc:
            logger.warning("Could not enqueue message {}; housekeeping will re-queue it: {!r}", message.id, exc)
        return MessageRead.model_validate(message)

    async def list(self, client_id: str, filters: MessageFilters) -> PageOut[MessageSummary]:
        # Payloads are not even read: a page of large payloads would be large in memory too.
        page = await self.messages.page(
            filters.limit,
            filters.cursor,
            client_id=client_id,
            event=filters.event,
            status=filters.status,
            unloaded=("payload",),
        )
        return page_out(page, MessageSummary)

    async def get(self, client_id: str, message_id: uuid.UUID) -> MessageRead:
        # Answered from the row's columns: no model instance to build for a read that only returns them.
        row = await self.messages.first_values_by(id=message_id, client_id=client_id)
        if row is None:
            raise NotFoundError(f"Message {message_id} not found.")
        return MessageRead.model_validate(row)

    async def deliveries_of(self, client_id: str, message_id: uuid.UUID, page: PageParams) -> PageOut[DeliveryRead]:
        await self._owned(client_id, message_id)
        return page_out(await self.deliveries.page(page.limit, page.cursor, message_id=message_id), DeliveryRead)

    async def redeliver(self, client_id: str, message_id: uuid.UUID) -> MessageRead:
        # One read, locked: the status checked below cannot change before the commit.
        message = await self._owned(client_id, message_id, lock=True)
        if message.status in IN_FLIGHT:
            raise ConflictError(f"Message {message_id} is still being delivered; re-send it once it has finished.")
        failed = [d for d in await self.deliveries.latest_per_webhook(message_id) if d.status == DeliveryStatus.FAILED]
        if not failed:
            raise ConflictError(f"Message {message_id} has no failed deliveries to re-send.")
        # Marks each retry as due, so housekeeping re-queues it, with its budget, should an enqueue below be lost.
        await self.deliveries.schedule_redelivery(failed, utcnow(), self.max_attempts)
        message.status = MessageStatus.DELIVERING
        await self.messages.update_model(message)
        await self.session.commit()
        for delivery in failed:
            attempt, last_attempt = delivery.attempt + 1, delivery.attempt + self.max_attempts
            try:
                await self.queue.retry(message_id, delivery.webhook_id, attempt, last_attempt, 0)
            except Exception as exc:
                logger.warning("Could not enqueue redelivery of {}; housekeeping will: {!r}", message_id, exc)
        return MessageRead.model_validate(message)

    def _replay(self, existing: Message, fingerprint: str | None) -> MessageRead:
        if existing.request_hash != fingerprint:
            raise ConflictError("This Idempotency-Key was already used with a different request body.")
        return MessageRead.model_validate(existing)

    async def _owned(self, client_id: str, message_id: uuid.UUID, *, lock: bool = False) -> Message:
        """The client's message (locked until the transaction ends if `lock`), else 404.

        Another client's message answers exactly like a missing one: no existence oracle.
        """
        if lock:
            message = await self.messages.lock(message_id, client_id=client_id)
        else:
            message = await self.messages.first_by(id=message_id, client_id=client_id)
        if message is None:
            raise NotFoundError(f"Message {message_id} not found.")
        return message
