"""POST /api/v1/webhooks/{id}/rotate-secret: a new secret shown once, the old one signing beside it for a while,
deliveries verifiable with either secret by the Standard Webhooks reference library."""

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.api.messaging.delivery_policy import DeliveryPolicy
from app.api.messaging.delivery_service import DeliveryService
from app.api.webhook.models import SecretRotation
from app.api.webhook.service import WebhookService
from app.clients.webhooks.client import WebhookClient
from app.clients.webhooks.target import TargetGuard
from app.core.config import Settings
from app.core.time import utcnow
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable
from tests.api.conftest import WebhookFactory
from tests.support.factories import create_message, create_webhook
from tests.support.fakes import RecordingQueue
from tests.support.problems import assert_field_error, assert_problem
from tests.support.receiver import Receiver
from tests.support.sealing import KEYRING, secret_of
from tests.support.tokens import HeadersFactory

WEBHOOKS = "/api/v1/webhooks"
POLICY = DeliveryPolicy(
    max_attempts=3,
    timeout_seconds=2.0,
    retry_base_seconds=1.0,
    retry_max_seconds=10.0,
    retry_after_max_seconds=30.0,
    requeue_after=timedelta(seconds=60),
    stalled_after=timedelta(minutes=5),
    retention=timedelta(days=30),
)


def rotate_path(webhook_id: object) -> str:
    return f"{WEBHOOKS}/{webhook_id}/rotate-secret"


async def _row(session: AsyncSession, webhook_id: str) -> Webhook:
    row = await WebhooksTable(session).first_or_default(uuid.UUID(webhook_id))
    assert row is not None
    await session.refresh(row)
    return row


async def test_rotation_answers_a_new_secret_once_and_keeps_the_old_one_for_the_overlap(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_webhook: WebhookFactory,
    db_session: AsyncSession,
    settings: Settings,
) -> None:
    created = await create_webhook()
    before = utcnow()

    response = await client.post(rotate_path(created["id"]), headers=auth_headers)

    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == {"secret", "previous_secret_expires_at"}
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != created["secret"]
    expires_at = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
    assert before + overlap <= expires_at <= utcnow() + overlap
    # Shown once: reading the webhook shows neither secret.
    fetched = (await client.get(f"{WEBHOOKS}/{created['id']}", headers=auth_headers)).json()
    assert "secret" not in fetched
    assert rotated["secret"] not in (await client.get(WEBHOOKS, headers=auth_headers)).text
    # Both stored sealed, bound to the row; the old one until the overlap ends.
    row = await _row(db_session, created["id"])
    assert secret_of(row) == rotated["secret"]
    assert row.previous_sealed_secret is not None
    assert KEYRING.open(row.previous_sealed_secret) == created["secret"]
    assert row.previous_secret_expires_at == expires_at
    assert rotated["secret"].encode() not in row.secret_ciphertext


async def test_overlap_zero_stops_signing_with_the_old_secret_at_once(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory, db_session: AsyncSession
) -> None:
    created = await create_webhook()

    response = await client.post(rotate_path(created["id"]), json={"overlap_seconds": 0}, headers=auth_headers)

    assert response.status_code == 200, response.text
    assert response.json()["previous_secret_expires_at"] is None
    row = await _row(db_session, created["id"])
    assert row.previous_sealed_secret is None
    assert [KEYRING.open(secret) for secret in row.signing_secrets(utcnow())] == [response.json()["secret"]]


async def test_a_rotation_during_an_overlap_drops_the_oldest_secret(
    client: httpx.AsyncClient, auth_headers: dict[str, str], create_webhook: WebhookFactory, db_session: AsyncSession
) -> None:
    created = await create_webhook()
    first = (await client.post(rotate_path(created["id"]), headers=auth_headers)).json()
    second = (await client.post(rotate_path(created["id"]), headers=auth_headers)).json()

    row = await _row(db_session, created["id"])
    signing = [KEYRING.open(secret) for secret in row.signing_secrets(utcnow())]
    assert signing == [second["secret"], first["secret"]]
    assert created["secret"] not in signing


@pytest.mark.parametrize(
    "body",
    [
        {"overlap_seconds": -1},
        {"overlap_seconds": 7 * 86_400 + 1},
        {"overlap_seconds": "soon"},
        {"overlap_seconds": "60"},  # strict, as the schema says: no numeric strings ...
        {"overlap_seconds": False},  # ... and no booleans (the fuzzer found this one accepted)
        {"secret": "mine"},
    ],
    ids=["negative", "over-a-week", "not-a-number", "numeric-string", "boolean", "own-secret"],
)
async def test_bad_rotation_requests_are_422_and_change_nothing(
    client: httpx.AsyncClient,
    auth_headers: dict[str, str],
    create_webhook: WebhookFactory,
    db_session: AsyncSession,
    body: dict[str, object],
) -> None:
    created = await create_webhook()

    response = await client.post(rotate_path(created["id"]), json=body, headers=auth_headers)

    assert_field_error(response, ["body", next(iter(body))])
    assert secret_of(await _row(db_session, created["id"])) == created["secret"]


async def test_another_clients_or_a_deleted_webhook_is_not_found(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory, db_session: AsyncSession
) -> None:
    theirs = await create_webhook(sub="client-b")
    deleted = await create_webhook()
    assert (await client.delete(f"{WEBHOOKS}/{deleted['id']}", headers=headers_for())).status_code == 204

    for webhook_id in (theirs["id"], deleted["id"], str(uuid.uuid4())):
        assert_problem(await client.post(rotate_path(webhook_id), headers=headers_for()), 404)
    assert secret_of(await _row(db_session, theirs["id"])) == theirs["secret"]


async def test_rotation_needs_the_write_scope(
    client: httpx.AsyncClient, headers_for: HeadersFactory, create_webhook: WebhookFactory
) -> None:
    created = await create_webhook()

    response = await client.post(rotate_path(created["id"]), headers=headers_for(scopes=("webhooks:read",)))

    assert_problem(response, 403)
    assert_problem(await client.post(rotate_path(created["id"])), 401)


async def test_deliveries_during_the_overlap_verify_with_either_secret_and_after_it_with_the_new_only(
    db_session: AsyncSession, webhook_client: WebhookClient, receiver: Receiver
) -> None:
    webhook = await create_webhook(db_session, url=receiver.url())
    old = secret_of(webhook)
    service = WebhookService(db_session, TargetGuard(allow_private=True), KEYRING, timedelta(hours=24))
    new = (await service.rotate_secret("client-a", webhook.id, None)).secret
    delivery = DeliveryService(db_session, webhook_client, RecordingQueue(), POLICY)

    message = await create_message(db_session)
    await db_session.commit()
    await delivery.fan_out(message.id)

    [request] = receiver.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(signature.startswith("v1,") for signature in signatures)
    # A receiver that has not switched yet and one that has: both accept it.
    assert StandardWebhook(old).verify(request.body, request.headers)
    assert StandardWebhook(new).verify(request.body, request.headers)

    # The overlap is over: one signature, with the new secret only.
    row = await WebhooksTable(db_session).first_or_default(webhook.id)
    assert row is not None
    row.previous_secret_expires_at = utcnow() - timedelta(seconds=1)
    await db_session.commit()
    later = await create_message(db_session)
    await db_session.commit()
    await delivery.fan_out(later.id)

    latest = receiver.requests[-1]
    assert " " not in latest.headers["webhook-signature"]
    assert StandardWebhook(new).verify(latest.body, latest.headers)
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(old).verify(latest.body, latest.headers)


async def test_concurrent_rotations_keep_the_secret_of_the_one_that_answered_last(engine: AsyncEngine) -> None:
    async def session() -> AsyncSession:
        return AsyncSession(engine, expire_on_commit=False)

    setup = await session()
    webhook = await create_webhook(setup, client_id=f"rotation-{uuid.uuid4()}")
    await setup.commit()
    sessions = [await session() for _ in range(2)]
    try:
        services = [WebhookService(s, TargetGuard(allow_private=True), KEYRING, timedelta(hours=1)) for s in sessions]
        rotations = await asyncio.gather(
            *(service.rotate_secret(webhook.client_id, webhook.id, SecretRotation()) for service in services)
        )
        row = await WebhooksTable(setup).first_or_default(webhook.id)
        assert row is not None
        await setup.refresh(row)
        current, previous = (KEYRING.open(secret) for secret in row.signing_secrets(utcnow()))
        answered = {rotation.secret for rotation in rotations}
        # One rotation after the other: the first's secret became the second's previous, nothing was lost.
        assert {current, previous} == answered
    finally:
        await WebhooksTable(setup).delete(webhook.id)
        await setup.commit()
        for s in [setup, *sessions]:
            await s.close()
