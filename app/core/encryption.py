"""Secrets at rest: values sealed with AES-256-GCM under an application key named by a key id.

Each sealed value is stored with the id of the key that sealed it, so the application key can be rotated:
put a new key first in WEBHOOK_SECRET_KEYS (it seals new values), keep the old ones after it (they still
open what they sealed), re-seal (`python -m scripts.reseal_webhook_secrets`), then drop the old keys.

A sealed value is bound to a `context` (AES-GCM associated data: authenticated, not stored), such as the id
of its row: a ciphertext copied to another row does not open there.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12  # the GCM standard size; random per value (2^32 values per key stay far from collisions)
# Written by the migration that introduced sealing for values stored before it; opened as they are, and
# sealed under the current key by `scripts.reseal_webhook_secrets`. Never a configured key id.
UNSEALED_KEY_ID = "unsealed"


@dataclass(frozen=True, slots=True)
class Sealed:
    """A sealed value: the key id and `nonce + ciphertext + tag` (both stored), and the context it is bound to
    (derived from where it is stored, e.g. the row id)."""

    key_id: str
    ciphertext: bytes
    context: bytes

    def __repr__(self) -> str:  # short, for logs and test output
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


class SecretUnavailableError(Exception):
    """A stored value cannot be opened: its key is not configured, or it was altered (or sealed for another row).

    The message names the key id, never the value.
    """


class KeyRing:
    """The application keys: the first seals, every one opens what it sealed."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        if any(key_id == UNSEALED_KEY_ID for key_id, _ in keys):
            raise ValueError(f"the key id {UNSEALED_KEY_ID!r} is reserved")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self.current_key_id = keys[0][0]

    def seal(self, plaintext: str, *, context: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self.current_key_id].encrypt(nonce, plaintext.encode(), context)
        return Sealed(self.current_key_id, nonce + ciphertext, context)

    def open(self, sealed: Sealed) -> str:
        if sealed.key_id == UNSEALED_KEY_ID:
            return sealed.ciphertext.decode()
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            raise SecretUnavailableError(f"no key {sealed.key_id!r} is configured (WEBHOOK_SECRET_KEYS)")
        nonce, ciphertext = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, ciphertext, sealed.context).decode()
        except InvalidTag:
            raise SecretUnavailableError(f"a value sealed with key {sealed.key_id!r} does not open") from None

    def is_current(self, sealed: Sealed) -> bool:
        """Sealed with the key that seals new values (nothing to re-seal)."""
        return sealed.key_id == self.current_key_id
