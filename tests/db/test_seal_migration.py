"""The migration that seals webhook secrets keeps the ones stored before it usable, and refuses to go down
once secrets are sealed (the way down cannot open them)."""

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.encryption import UNSEALED_KEY_ID
from app.db.engine import create_engine
from app.db.migrations import shipped_migration_versions
from app.db.webhook.table import WebhooksTable
from scripts.reseal_webhook_secrets import reseal
from tests.support.database import dbmate, scratch_database
from tests.support.sealing import KEYRING

SEALING_VERSION = "20261201120000"
PLAIN = "whsec_cGxhaW4tdGV4dC1zZWNyZXQtZnJvbS1iZWZvcmU="


@pytest.fixture
def before_sealing(settings: Settings) -> Iterator[Settings]:
    """A database migrated up to the migration before sealing."""
    with scratch_database(settings, "sealing") as scratch:
        dbmate(scratch, "up")
        # Roll back the sealing migration and every one that came after it.
        for _ in (v for v in shipped_migration_versions() if v >= SEALING_VERSION):
            dbmate(scratch, "rollback")
        yield scratch


@pytest.fixture
async def connection(before_sealing: Settings) -> AsyncIterator[asyncpg.Connection]:
    s = before_sealing
    connection = await asyncpg.connect(host=s.DB_HOST, port=s.DB_PORT, user=s.DB_USERNAME, database=s.DB_NAME)
    yield connection
    await connection.close()


async def test_secrets_stored_before_sealing_still_sign_and_are_sealed_by_the_reseal_run(
    before_sealing: Settings, connection: asyncpg.Connection
) -> None:
    webhook_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO webhooks (id, client_id, url, events, secret) VALUES ($1, 'client-a', 'https://a.example/', "
        "'{order.created}', $2)",
        webhook_id,
        PLAIN,
    )

    dbmate(before_sealing, "up")

    key_id, stored = await connection.fetchrow(
        "SELECT secret_key_id, secret_ciphertext FROM webhooks WHERE id = $1", webhook_id
    )
    assert (key_id, stored) == (UNSEALED_KEY_ID, PLAIN.encode())
    engine = create_engine(before_sealing)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            webhook = await WebhooksTable(session).first_or_default(webhook_id)
            assert webhook is not None
            assert [KEYRING.open(secret) for secret in webhook.signing_secrets(webhook.created_at)] == [PLAIN]
            assert await reseal(session, KEYRING) == 1
    finally:
        await engine.dispose()
    key_id, stored = await connection.fetchrow(
        "SELECT secret_key_id, secret_ciphertext FROM webhooks WHERE id = $1", webhook_id
    )
    assert key_id == KEYRING.current_key_id
    assert PLAIN.encode() not in stored

    # Sealed secrets cannot be given back in plain text: the way down refuses rather than lose them.
    for _ in (v for v in shipped_migration_versions() if v > SEALING_VERSION):
        dbmate(before_sealing, "rollback")
    with pytest.raises(subprocess.CalledProcessError) as caught:
        dbmate(before_sealing, "rollback")
    assert b"webhooks hold sealed secrets" in caught.value.stderr
