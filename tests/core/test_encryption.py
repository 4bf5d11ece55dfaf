"""KeyRing: AES-256-GCM sealing with a key id stored beside each value, so the application key can rotate."""

import os

import pytest

from app.core.encryption import NONCE_BYTES, UNSEALED_KEY_ID, KeyRing, Sealed, SecretUnavailableError

OLD = ("2026-01", os.urandom(32))
NEW = ("2026-06", os.urandom(32))
SECRET = "whsec_c2VjcmV0LXZhbHVlLW9mLXRoZS10ZXN0"
ROW = b"webhooks.secret:row-1"


def test_a_sealed_value_opens_and_names_its_key() -> None:
    keyring = KeyRing([NEW])

    sealed = keyring.seal(SECRET, context=ROW)

    assert sealed.key_id == "2026-06"
    assert SECRET.encode() not in sealed.ciphertext
    assert len(sealed.ciphertext) == NONCE_BYTES + len(SECRET) + 16  # nonce, ciphertext, GCM tag
    assert keyring.open(sealed) == SECRET


def test_each_sealing_uses_a_fresh_nonce() -> None:
    keyring = KeyRing([NEW])

    first, second = keyring.seal(SECRET, context=ROW), keyring.seal(SECRET, context=ROW)

    assert first.ciphertext[:NONCE_BYTES] != second.ciphertext[:NONCE_BYTES]
    assert first.ciphertext != second.ciphertext


def test_after_a_key_rotation_old_values_still_open_and_new_ones_use_the_new_key() -> None:
    before = KeyRing([OLD]).seal(SECRET, context=ROW)
    rotated = KeyRing([NEW, OLD])

    assert rotated.open(before) == SECRET
    assert not rotated.is_current(before)
    after = rotated.seal(SECRET, context=ROW)
    assert after.key_id == NEW[0]
    assert rotated.is_current(after)
    # Once every value is re-sealed, the old key can go.
    assert KeyRing([NEW]).open(after) == SECRET


def test_a_value_whose_key_was_removed_does_not_open_and_says_which_key() -> None:
    sealed = KeyRing([OLD]).seal(SECRET, context=ROW)

    with pytest.raises(SecretUnavailableError, match="no key '2026-01' is configured") as caught:
        KeyRing([NEW]).open(sealed)

    assert SECRET not in str(caught.value)


def test_a_value_moved_to_another_row_does_not_open() -> None:
    keyring = KeyRing([NEW])
    sealed = keyring.seal(SECRET, context=ROW)

    with pytest.raises(SecretUnavailableError, match="does not open"):
        keyring.open(Sealed(sealed.key_id, sealed.ciphertext, b"webhooks.secret:row-2"))


@pytest.mark.parametrize("position", [0, NONCE_BYTES, -1])
def test_an_altered_value_does_not_open(position: int) -> None:
    keyring = KeyRing([NEW])
    sealed = keyring.seal(SECRET, context=ROW)
    altered = bytearray(sealed.ciphertext)
    altered[position] ^= 0x01

    with pytest.raises(SecretUnavailableError):
        keyring.open(Sealed(sealed.key_id, bytes(altered), ROW))


def test_the_same_key_id_with_another_key_does_not_open() -> None:
    sealed = KeyRing([NEW]).seal(SECRET, context=ROW)

    with pytest.raises(SecretUnavailableError):
        KeyRing([(NEW[0], os.urandom(32))]).open(sealed)


def test_values_stored_before_sealing_open_as_they_are_until_resealed() -> None:
    keyring = KeyRing([NEW])
    legacy = Sealed(UNSEALED_KEY_ID, SECRET.encode(), ROW)

    assert keyring.open(legacy) == SECRET
    assert not keyring.is_current(legacy)


def test_the_reserved_key_id_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="reserved"):
        KeyRing([(UNSEALED_KEY_ID, os.urandom(32))])
    with pytest.raises(ValueError, match="at least one key"):
        KeyRing([])


def test_the_repr_shows_no_ciphertext() -> None:
    sealed = KeyRing([NEW]).seal(SECRET, context=ROW)

    assert repr(sealed) == f"Sealed(key_id='2026-06', {len(sealed.ciphertext)} bytes)"
