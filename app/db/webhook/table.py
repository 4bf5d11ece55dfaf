from sqlalchemy import func, select
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

    async def lock_client(self, client_id: str) -> None:
        """Serialise changes to the set of the client's webhooks until the transaction ends (an advisory lock)."""
        await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(client_id, 0))))
