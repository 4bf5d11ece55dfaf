import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ARRAY, Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from app.core.encryption import Sealed
from app.core.time import utcnow
from app.db.columns import timestamptz


class DisabledReason(StrEnum):
    GONE = "gone"  # the endpoint answered 410 Gone
    FAILING = "failing"  # every attempt failed for WEBHOOK_DISABLE_AFTER_FAILING_DAYS
    MANUAL = "manual"  # the client set active to false


class Webhook(SQLModel, table=True):
    __tablename__ = "webhooks"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    client_id: str = Field(sa_type=Text, nullable=False)
    url: str = Field(sa_type=Text, nullable=False)
    events: list[str] = Field(sa_column=Column(ARRAY(Text), nullable=False))
    description: str | None = Field(default=None, sa_type=Text, nullable=True)
    active: bool = Field(default=True, nullable=False)
    # The signing secret, sealed (app/core/encryption.py) with the key named beside it; shown to the client
    # once, at creation or rotation. After a rotation the previous one still signs until it expires.
    secret_key_id: str = Field(sa_type=Text, nullable=False)
    secret_ciphertext: bytes = Field(sa_type=LargeBinary, nullable=False)
    previous_secret_key_id: str | None = Field(default=None, sa_type=Text, nullable=True)
    previous_secret_ciphertext: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=True)
    previous_secret_expires_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    # The first failed attempt since the last successful one (None while the endpoint answers 2xx).
    failing_since: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    # Why and since when it is inactive; both None while it is active (a constraint says so).
    disabled_reason: DisabledReason | None = Field(default=None, sa_type=Text, nullable=True)
    disabled_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamptz())
    deleted_at: datetime | None = Field(default=None, sa_column=timestamptz(nullable=True, default_now=False))

    def set_active(self, active: bool, at: datetime) -> None:
        """The client's switch: off records why and when; on starts afresh (no failing streak carried over,
        or the next failure would disable it again at once). Setting the current state changes nothing."""
        if active == self.active:
            return
        self.active = active
        self.failing_since = None
        self.disabled_reason = None if active else DisabledReason.MANUAL
        self.disabled_at = None if active else at

    @property
    def secret_context(self) -> bytes:
        """What a sealed secret of this webhook is bound to: it opens for this row only."""
        return f"webhooks.secret:{self.id}".encode()

    @property
    def sealed_secret(self) -> Sealed:
        return Sealed(self.secret_key_id, self.secret_ciphertext, self.secret_context)

    @property
    def previous_sealed_secret(self) -> Sealed | None:
        if self.previous_secret_key_id is None or self.previous_secret_ciphertext is None:
            return None
        return Sealed(self.previous_secret_key_id, self.previous_secret_ciphertext, self.secret_context)

    def signing_secrets(self, now: datetime) -> list[Sealed]:
        """The secrets a delivery at `now` is signed with: the current one, and the previous one until it expires."""
        previous = self.previous_sealed_secret
        expires_at = self.previous_secret_expires_at
        if previous is not None and expires_at is not None and now < expires_at:
            return [self.sealed_secret, previous]
        return [self.sealed_secret]

    def set_secret(self, sealed: Sealed) -> None:
        self.secret_key_id, self.secret_ciphertext = sealed.key_id, sealed.ciphertext

    def set_previous_secret(self, sealed: Sealed) -> None:
        """Re-seal the previous secret (its expiry unchanged)."""
        self.previous_secret_key_id, self.previous_secret_ciphertext = sealed.key_id, sealed.ciphertext

    def rotate_secret(self, sealed: Sealed, previous_expires_at: datetime | None) -> None:
        """`sealed` becomes the secret; the current one signs too until `previous_expires_at` (None: not at all)."""
        if previous_expires_at is None:
            self.previous_secret_key_id = self.previous_secret_ciphertext = None
        else:
            self.previous_secret_key_id, self.previous_secret_ciphertext = self.secret_key_id, self.secret_ciphertext
        self.previous_secret_expires_at = previous_expires_at
        self.set_secret(sealed)
