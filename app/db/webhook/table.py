import uuid

from sqlalchemy import and_, or_, select
from sqlmodel import col

from app.db.base_table import BaseTable
from app.db.webhook.model import Webhook


class WebhooksTable(BaseTable[Webhook]):
    model = Webhook

    async def subscribed(self, client_id: str, event: str) -> list[Webhook]:
        """The client's live, active webhooks subscribed to `event`."""
        statement = select(Webhook).where(
            col(Webhook.client_id) == client_id,
            col(Webhook.active).is_(True),
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
