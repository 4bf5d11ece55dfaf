"""Every table class, imported once so SQLModel.metadata knows the whole schema."""

from app.db.delivery.model import Delivery
from app.db.message.model import Message
from app.db.webhook.model import Webhook

__all__ = ["Delivery", "Message", "Webhook"]
