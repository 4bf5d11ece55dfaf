"""scripts/reseal_webhook_secrets.py: after an application-key rotation (or the sealing migration), every stored
signing secret is re-sealed under the current key and still opens to the same secret."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core.config import Settings
from app.core.encryption import UNSEALED_KEY_ID, KeyRing, SecretUnavailableError
from app.core.time import utcnow
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable
from scripts.reseal_webhook_secrets import reseal
from tests.support.factories import create_webhook
from tests.support.sealing import KEYRING
from tests.support.settings import as_environment, test_settings

ROOT = Path(__file__).resolve().parents[2]
NEW = ("2026-12", os.urandom(32))
SECRETS = ["whsec_b25lLW9uZS1vbmUtb25lLW9uZS1vbmUtb25lLW9uZQ==", "whsec_dHdvLXR3by10d28tdHdvLXR3by10d28tdHdvLXR3bw=="]


async def test_every_secret_is_resealed_under_the_new_key_and_opens_to_the_same_value(
    db_session: AsyncSession,
) -> None:
    current = await create_webhook(db_session, secret=SECRETS[0])
    rotated = await create_webhook(db_session, secret=SECRETS[1])
    rotated.rotate_secret(KEYRING.seal(SECRETS[0], context=rotated.secret_context), utcnow() + timedelta(hours=1))
    deleted = await create_webhook(db_session, secret=SECRETS[1], deleted_at=utcnow())
    # Stored before sealing existed: the migration marked it `unsealed`.
    legacy = await create_webhook(db_session)
    legacy.secret_key_id, legacy.secret_ciphertext = UNSEALED_KEY_ID, SECRETS[1].encode()
    await db_session.commit()
    updated_at = {webhook.id: webhook.updated_at for webhook in (current, rotated, deleted, legacy)}
    new_keyring = KeyRing([NEW, *test_settings().webhook_secret_keys])

    count = await reseal(db_session, new_keyring, batch_size=2)

    assert count >= 4  # and any other rows of this database, all inside the test's transaction
    opened = KeyRing([NEW])  # the old key is no longer needed
    for webhook, secrets in [
        (current, [SECRETS[0]]),
        (rotated, [SECRETS[0], SECRETS[1]]),  # the new one, and the one rotated out
        (deleted, [SECRETS[1]]),
        (legacy, [SECRETS[1]]),
    ]:
        row = await WebhooksTable(db_session).first_or_default(webhook.id, include_deleted=True)
        assert row is not None
        await db_session.refresh(row)
        assert row.secret_key_id == NEW[0]
        assert [opened.open(secret) for secret in row.signing_secrets(utcnow())] == secrets
        assert row.updated_at == updated_at[webhook.id]
    assert await reseal(db_session, new_keyring) == 0


async def test_a_secret_whose_key_is_gone_stops_the_run_naming_the_webhook(db_session: AsyncSession) -> None:
    webhook = await create_webhook(db_session)
    await db_session.execute(update(Webhook).where(col(Webhook.id) == webhook.id).values(secret_key_id="retired"))

    with pytest.raises(SecretUnavailableError, match=f"webhook {webhook.id}: no key 'retired' is configured"):
        await reseal(db_session, KeyRing([NEW, *test_settings().webhook_secret_keys]))


def test_the_command_reseals_and_says_how_many(settings: Settings) -> None:
    # The suite's database with the suite's (development) key: nothing there is sealed with another key,
    # so the run finds nothing to do, and says so.
    result = subprocess.run(
        [sys.executable, "-m", "scripts.reseal_webhook_secrets"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **as_environment(settings)},
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "Re-sealed the signing secrets of 0 webhook(s) with key 'dev'." in result.stdout
