"""Re-seal the webhook signing secrets not sealed with the current key (the first of WEBHOOK_SECRET_KEYS).

Run it
- once after the migration that introduced sealing: it seals the secrets stored before it (key id `unsealed`);
- after putting a new key first in WEBHOOK_SECRET_KEYS, and before removing the old key from it.

Batch by batch, one short transaction each; safe to run again and while the service runs (rows are locked
while they are re-sealed). Prints how many webhooks it re-sealed; exits 1 if a secret does not open
(its key is no longer configured), naming the webhook and the key.

    python -m scripts.reseal_webhook_secrets
"""

import argparse
import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import get_settings
from app.core.encryption import KeyRing, SecretUnavailableError
from app.db.engine import create_engine, create_session_factory
from app.db.webhook.model import Webhook
from app.db.webhook.table import WebhooksTable

BATCH_SIZE = 500


async def reseal(session: AsyncSession, keyring: KeyRing, batch_size: int = BATCH_SIZE) -> int:
    """Re-seal under the current key, committing each batch; returns how many webhooks were re-sealed."""
    webhooks = WebhooksTable(session)
    total = 0
    while True:
        batch = await webhooks.not_sealed_with(keyring.current_key_id, batch_size)
        for webhook in batch:
            _reseal(webhook, keyring)
        await session.commit()  # not update_model: updated_at stays, nothing the client sees changed
        total += len(batch)
        if len(batch) < batch_size:
            return total


def _reseal(webhook: Webhook, keyring: KeyRing) -> None:
    try:
        if not keyring.is_current(webhook.sealed_secret):
            webhook.set_secret(keyring.seal(keyring.open(webhook.sealed_secret), context=webhook.secret_context))
        previous = webhook.previous_sealed_secret
        if previous is not None and not keyring.is_current(previous):
            webhook.set_previous_secret(keyring.seal(keyring.open(previous), context=webhook.secret_context))
    except SecretUnavailableError as exc:
        raise SecretUnavailableError(f"webhook {webhook.id}: {exc}") from None


async def run() -> int:
    settings = get_settings()
    keyring = KeyRing(settings.webhook_secret_keys)
    engine = create_engine(settings)
    try:
        async with create_session_factory(engine)() as session:
            count = await reseal(session, keyring)
    except SecretUnavailableError as exc:
        print(f"Stopped: {exc}. Put that key back in WEBHOOK_SECRET_KEYS and run again.", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"Re-sealed the signing secrets of {count} webhook(s) with key {keyring.current_key_id!r}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m scripts.reseal_webhook_secrets", description=__doc__).parse_args(argv)
    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
