import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, status

from app.api.deps import SessionDep, require_scopes
from app.api.messaging.models import (
    IDEMPOTENCY_KEY_PATTERN,
    DeliveryRead,
    MessageCreate,
    MessageFilterQuery,
    MessageRead,
    MessageSummary,
)
from app.api.messaging.queue import DeliveryQueue
from app.api.messaging.service import MessagingService
from app.api.pagination import PageOut, PageQuery
from app.api.problems import IDEMPOTENCY_CONFLICT, REDELIVERY_CONFLICT
from app.api.routing import ApiRoute
from app.core.config import Settings
from app.core.security import Principal

router = APIRouter(prefix="/messages", tags=["messages"], route_class=ApiRoute)

Reader = Annotated[Principal, Depends(require_scopes("messages:read"))]
Writer = Annotated[Principal, Depends(require_scopes("messages:write"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Retry-safe creation: for IDEMPOTENCY_KEY_TTL_HOURS (default 24) after the first request, "
        "the same key answers with the message it created instead of a new one; after that the key is free again.",
    ),
]


async def get_messaging_service(request: Request, session: SessionDep) -> MessagingService:
    """The service over the request's session and the queue the lifespan built (the Redis publisher behind a
    hand-off in production; tests install a recording one in app.state). The settings and the queue are read
    here, not through dependencies of their own: each costs FastAPI some bookkeeping per request."""
    state = request.app.state
    settings: Settings = state.settings
    queue: DeliveryQueue = state.delivery_queue
    key_ttl = timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    return MessagingService(session, queue, settings.WEBHOOK_MAX_ATTEMPTS, key_ttl)


MessagingServiceDep = Annotated[MessagingService, Depends(get_messaging_service)]


@router.post("", status_code=status.HTTP_202_ACCEPTED, responses=IDEMPOTENCY_CONFLICT)
async def create_message(
    data: MessageCreate, client: Writer, service: MessagingServiceDep, idempotency_key: IdempotencyKey = None
) -> MessageRead:
    """Accept a message for delivery to every active webhook subscribed to its event."""
    return await service.create(client.sub, data, idempotency_key)


@router.get("")
async def list_messages(
    filters: MessageFilterQuery, client: Reader, service: MessagingServiceDep
) -> PageOut[MessageSummary]:
    """The client's messages, newest first, optionally filtered by event and status.

    Items leave the payload out, so that a page's size is bounded (some 30 KB for 100 items) however large
    the payloads are; `GET /messages/{message_id}` answers one message with its payload.
    """
    return await service.list(client.sub, filters)


@router.get("/{message_id}")
async def get_message(message_id: uuid.UUID, client: Reader, service: MessagingServiceDep) -> MessageRead:
    """One message and its delivery status."""
    return await service.get(client.sub, message_id)


@router.get("/{message_id}/deliveries")
async def list_deliveries(
    message_id: uuid.UUID, page: PageQuery, client: Reader, service: MessagingServiceDep
) -> PageOut[DeliveryRead]:
    """Every delivery attempt of a message, newest first."""
    return await service.deliveries_of(client.sub, message_id, page)


@router.post("/{message_id}/redeliver", status_code=status.HTTP_202_ACCEPTED, responses=REDELIVERY_CONFLICT)
async def redeliver_message(message_id: uuid.UUID, client: Writer, service: MessagingServiceDep) -> MessageRead:
    """Send the message again to the webhooks whose delivery failed."""
    return await service.redeliver(client.sub, message_id)
