import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.api.deps import SessionDep, SettingsDep, TargetGuardDep, require_scopes
from app.api.pagination import PageOut, PageQuery
from app.api.problems import WEBHOOK_LIMIT_CONFLICT
from app.api.webhook.models import WebhookCreate, WebhookCreated, WebhookRead, WebhookUpdate
from app.api.webhook.service import WebhookService
from app.core.security import Principal

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

Reader = Annotated[Principal, Depends(require_scopes("webhooks:read"))]
Writer = Annotated[Principal, Depends(require_scopes("webhooks:write"))]


def get_webhook_service(session: SessionDep, targets: TargetGuardDep, settings: SettingsDep) -> WebhookService:
    return WebhookService(session, targets, settings.WEBHOOK_MAX_PER_CLIENT)


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
    """Change the URL, events, description or active flag; fields not sent are left alone."""
    return await service.update(client.sub, webhook_id, data)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: uuid.UUID, client: Writer, service: WebhookServiceDep) -> None:
    """Delete a webhook; it receives nothing more and answers 404 afterwards."""
    await service.delete(client.sub, webhook_id)
