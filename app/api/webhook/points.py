import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.api.deps import KeyRingDep, SessionDep, SettingsDep, TargetGuardDep, require_scopes
from app.api.pagination import PageOut, PageQuery
from app.api.problems import WEBHOOK_LIMIT_CONFLICT
from app.api.routing import ApiRoute
from app.api.webhook.models import (
    SecretRotation,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookSecretRotated,
    WebhookUpdate,
)
from app.api.webhook.service import WebhookService
from app.core.security import Principal

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=ApiRoute)

Reader = Annotated[Principal, Depends(require_scopes("webhooks:read"))]
Writer = Annotated[Principal, Depends(require_scopes("webhooks:write"))]


async def get_webhook_service(
    session: SessionDep, targets: TargetGuardDep, keyring: KeyRingDep, settings: SettingsDep
) -> WebhookService:
    overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
    return WebhookService(session, targets, keyring, overlap, settings.WEBHOOK_MAX_PER_CLIENT)


WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=WEBHOOK_LIMIT_CONFLICT)
async def create_webhook(data: WebhookCreate, client: Writer, service: WebhookServiceDep) -> WebhookCreated:
    """Register a webhook (at most WEBHOOK_MAX_PER_CLIENT per client). The response carries the signing
    secret: it is shown only this once."""
    return await service.create(client.sub, data)


@router.get("")
async def list_webhooks(page: PageQuery, client: Reader, service: WebhookServiceDep) -> PageOut[WebhookRead]:
    """The client's webhooks, newest first, one keyset page at a time."""
    return await service.list(client.sub, page)


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: uuid.UUID, client: Reader, service: WebhookServiceDep) -> WebhookRead:
    """One webhook (without its secret)."""
    return await service.get(client.sub, webhook_id)


@router.patch("/{webhook_id}")
async def update_webhook(
    webhook_id: uuid.UUID, data: WebhookUpdate, client: Writer, service: WebhookServiceDep
) -> WebhookRead:
    """Change the URL, events, description or active flag; fields not sent are left alone.

    `{"active": true}` brings back a webhook that the service disabled (410 Gone, or failing for days) or the
    client turned off: it receives new messages again, and the ones recorded as not sent meanwhile can be
    re-sent with `POST /messages/{id}/redeliver`.
    """
    return await service.update(client.sub, webhook_id, data)


@router.post("/{webhook_id}/rotate-secret")
async def rotate_webhook_secret(
    webhook_id: uuid.UUID, client: Writer, service: WebhookServiceDep, data: SecretRotation | None = None
) -> WebhookSecretRotated:
    """Replace the signing secret; the response shows the new one, only this once. Until
    `previous_secret_expires_at` deliveries carry two signatures, one per secret, so receivers can switch
    without missing any (send `overlap_seconds: 0` after a leak to stop signing with the old one at once)."""
    return await service.rotate_secret(client.sub, webhook_id, data)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: uuid.UUID, client: Writer, service: WebhookServiceDep) -> None:
    """Delete a webhook; it receives nothing more and answers 404 afterwards."""
    await service.delete(client.sub, webhook_id)
