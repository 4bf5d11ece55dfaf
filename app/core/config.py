"""Application settings: the only module that reads the environment."""

import base64
import binascii
import re
from functools import lru_cache
from typing import Annotated, Literal, Self
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Environment = Literal["local", "test", "dev", "staging", "prod"]
LogFormat = Literal["text", "json"]

# Deliberately recognisable: refused outside local/test so it can never sign production tokens.
DEV_JWT_SECRET = "local-development-secret-change-me-0123456789"  # noqa: S105 - public on purpose
LOCAL_ENVIRONMENTS: frozenset[str] = frozenset({"local", "test"})
# The key that seals webhook signing secrets in local/test when WEBHOOK_SECRET_KEYS is unset; public on
# purpose like DEV_JWT_SECRET, and refused elsewhere. 32 bytes: an AES-256 key.
DEV_WEBHOOK_SECRET_KEY_ID = "dev"  # noqa: S105 - a key's name, not a key
DEV_WEBHOOK_SECRET_KEY = b"local-development-key-change-me!"
WEBHOOK_SECRET_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


def _split_csv(value: object) -> object:
    """Accept `a,b,c` (how people write environment variables) as well as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting must not print the other settings (secrets among them).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # Application
    APP_NAME: str = "fastapi-postgres-stack"
    APP_ENVIRONMENT: Environment = "local"
    APP_VERSION: str = "0.1.0"
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: LogFormat | None = None
    DOCS_ENABLED: bool = True

    # PostgreSQL
    DB_HOST: str = "localhost"
    DB_PORT: int = 5432
    DB_NAME: str = "app"
    DB_USERNAME: str = "postgres"
    DB_PASSWORD: SecretStr = SecretStr("")
    # Per process (API worker or Celery worker process); sized in the README's "Performance" section.
    DB_POOL_SIZE: int = Field(default=10, ge=1)
    DB_MAX_OVERFLOW: int = Field(default=0, ge=0)
    DB_POOL_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)

    # PostgreSQL deadlines, per connection (0 turns a statement, lock or idle one off). The API's are short:
    # someone waits for each answer. The worker's allow longer batches; nobody waits on them.
    DB_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    DB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=10.0, ge=0)
    DB_LOCK_TIMEOUT_SECONDS: float = Field(default=3.0, ge=0)
    DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS: float = Field(default=30.0, ge=0)
    WORKER_DB_STATEMENT_TIMEOUT_SECONDS: float = Field(default=60.0, ge=0)
    WORKER_DB_LOCK_TIMEOUT_SECONDS: float = Field(default=10.0, ge=0)
    WORKER_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS: float = Field(default=60.0, ge=0)
    # A migration waiting longer than this for a lock fails (and changes nothing) instead of queueing every
    # query of the running service behind it.
    DB_MIGRATION_LOCK_TIMEOUT_SECONDS: float = Field(default=5.0, ge=0)

    # Redis
    REDIS_HOST: str = "localhost"
    REDIS_PORT: int = 6379
    REDIS_DB: int = Field(default=0, ge=0)
    REDIS_PASSWORD: SecretStr | None = None
    # The Celery broker connection's deadlines, in the API (publishing) and the worker (consuming).
    BROKER_CONNECT_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    BROKER_SOCKET_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)
    # How often an idle broker connection is checked: a consumer whose connection silently died (a frozen
    # Redis, a failover, a NAT that forgot it) reconnects within about 1 + 2 x this many seconds.
    BROKER_HEALTH_CHECK_INTERVAL_SECONDS: int = Field(default=10, ge=1)

    # HTTP edge
    CORS_ALLOW_ORIGINS: Annotated[list[str], NoDecode] = [
        "http://localhost:3000",
        "http://localhost:5173",
        "http://localhost:8080",
    ]
    MAX_BODY_BYTES: int = Field(default=1_048_576, ge=1)
    # Per API process: requests served at once (the rest wait, first come first served, up to the timeout, then
    # 503). Above DB_POOL_SIZE so the pool stays busy; sized in the README's "Performance" section.
    MAX_CONCURRENT_REQUESTS: int = Field(default=32, ge=1)
    REQUEST_QUEUE_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    HEALTH_CHECK_TIMEOUT_SECONDS: float = Field(default=2.0, gt=0)

    # Authentication
    JWT_SECRET: SecretStr = SecretStr(DEV_JWT_SECRET)
    JWT_ISSUER: str | None = None
    JWT_AUDIENCE: str | None = None
    JWT_JWKS_URL: str | None = None
    JWT_JWKS_CACHE_SECONDS: int = Field(default=300, ge=1)
    JWT_LEEWAY_SECONDS: int = Field(default=30, ge=0)

    # Webhook delivery
    WEBHOOK_MAX_ATTEMPTS: int = Field(default=5, ge=1, le=20)
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)
    WEBHOOK_RETRY_BASE_SECONDS: float = Field(default=2.0, gt=0)
    WEBHOOK_RETRY_MAX_SECONDS: float = Field(default=300.0, gt=0)
    WEBHOOK_RETRY_AFTER_MAX_SECONDS: float = Field(default=300.0, gt=0)
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool | None = None
    MESSAGE_REQUEUE_AFTER_SECONDS: int = Field(default=60, ge=1)
    # Endpoint health: a webhook whose every attempt has failed for this long is disabled (410 Gone: at once).
    WEBHOOK_DISABLE_AFTER_FAILING_DAYS: float = Field(default=5.0, gt=0)
    DELIVERY_RETENTION_DAYS: int = Field(default=30, ge=1)
    # Retention: finished messages (delivered, failed, partially_failed) last changed longer ago are deleted,
    # their deliveries with them. An Idempotency-Key answers with its message for this long, then is free.
    MESSAGE_RETENTION_DAYS: int = Field(default=30, ge=1)
    IDEMPOTENCY_KEY_TTL_HOURS: float = Field(default=24.0, gt=0)

    # Celery
    CELERY_TASK_TIME_LIMIT_SECONDS: int = Field(default=120, ge=1)
    CELERY_HOUSEKEEPING_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)

    # Delivery throughput and isolation (per worker process; app/worker/runtime.py)
    CELERY_CONCURRENCY: int = Field(default=128, ge=1)
    WEBHOOK_MAX_IN_FLIGHT: int = Field(default=128, ge=1)
    WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT: int = Field(default=16, ge=1)
    WEBHOOK_MAX_PER_CLIENT: int = Field(default=100, ge=1)
    MESSAGE_CLAIM_LEASE_SECONDS: float = Field(default=15.0, ge=1)

    # Observability
    SENTRY_DSN: SecretStr | None = None
    SENTRY_TRACES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    SENTRY_PROFILES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    # The standard OpenTelemetry name: the collector's base URL; spans are POSTed to <url>/v1/traces.
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None

    # Rate limiting
    RATE_LIMIT_PER_MINUTE: int = Field(default=600, ge=1)
    RATE_LIMIT_FAIL_OPEN: bool = True

    # Security: outbound webhook requests, signing secrets at rest, identity-provider keys
    # `kid:base64-of-32-bytes,...`: AES-256-GCM keys sealing signing secrets; the first seals new values,
    # the others only open values sealed before a key rotation. Unset: a development key (local/test only).
    WEBHOOK_SECRET_KEYS: SecretStr | None = None
    # After a secret rotation, deliveries are signed with the previous secret too for this long.
    WEBHOOK_SECRET_OVERLAP_SECONDS: int = Field(default=86_400, ge=0, le=7 * 86_400)
    # Each DNS lookup of a webhook's host (at registration; once per connection at delivery) gets this long.
    WEBHOOK_DNS_TIMEOUT_SECONDS: float = Field(default=3.0, gt=0, le=30)
    # Send every delivery through this HTTP(S) proxy (e.g. an egress proxy that enforces the address policy).
    WEBHOOK_EGRESS_PROXY: str | None = None
    # While the JWKS endpoint fails, keep verifying with the last key set fetched for up to this long.
    JWT_JWKS_MAX_STALE_SECONDS: int = Field(default=86_400, ge=0)

    @field_validator("CORS_ALLOW_ORIGINS", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_JWKS_URL",
        "LOG_FORMAT",
        "SENTRY_DSN",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "WEBHOOK_SECRET_KEYS",
        "WEBHOOK_EGRESS_PROXY",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("WEBHOOK_SECRET_KEYS")
    @classmethod
    def _check_secret_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse_secret_keys(value.get_secret_value())  # raises ValueError naming what is wrong, not the key
        return value

    @field_validator("WEBHOOK_EGRESS_PROXY")
    @classmethod
    def _check_egress_proxy(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value is not None and (parts.scheme not in ("http", "https") or not parts.hostname):
            raise ValueError("WEBHOOK_EGRESS_PROXY must be an http:// or https:// proxy URL")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Self:
        if self.is_local:
            return self
        problems: list[str] = []
        if self.JWT_JWKS_URL is None and self.JWT_SECRET.get_secret_value() == DEV_JWT_SECRET:
            problems.append("JWT_SECRET is the development secret; set a random secret of 32+ characters")
        elif self.JWT_JWKS_URL is None and len(self.JWT_SECRET.get_secret_value()) < 32:
            problems.append("JWT_SECRET is shorter than 32 characters")
        if "*" in self.CORS_ALLOW_ORIGINS:
            problems.append("CORS_ALLOW_ORIGINS contains '*'; list the allowed origins")
        if self.DOCS_ENABLED and "DOCS_ENABLED" not in self.model_fields_set:
            problems.append("API docs are on by default; set DOCS_ENABLED=false, or true to publish them")
        problems.extend(self._security_problems())
        if problems:
            raise ValueError(f"unsafe settings for APP_ENVIRONMENT={self.APP_ENVIRONMENT}: " + "; ".join(problems))
        return self

    def _security_problems(self) -> list[str]:
        """Outside local/test: a key of our own for secrets at rest, no private webhook targets, and a JWKS
        endpoint reached over TLS whose tokens are checked for this service (issuer and audience)."""
        problems: list[str] = []
        if self.WEBHOOK_SECRET_KEYS is None:
            problems.append(
                "WEBHOOK_SECRET_KEYS is not set; webhook signing secrets are sealed with it: "
                "set WEBHOOK_SECRET_KEYS=<key id>:$(openssl rand -base64 32)"
            )
        elif any(key == DEV_WEBHOOK_SECRET_KEY for _, key in self.webhook_secret_keys):
            problems.append("WEBHOOK_SECRET_KEYS contains the development key; generate one of your own")
        if self.WEBHOOK_ALLOW_PRIVATE_TARGETS:
            problems.append("WEBHOOK_ALLOW_PRIVATE_TARGETS=true lets tenants reach internal hosts (local only)")
        if self.JWT_JWKS_URL is not None:
            if urlsplit(self.JWT_JWKS_URL).scheme != "https":
                problems.append("JWT_JWKS_URL must use https://")
            if self.JWT_ISSUER is None or self.JWT_AUDIENCE is None:
                problems.append("JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE, so tokens issued for others fail")
        return problems

    @property
    def is_local(self) -> bool:
        return self.APP_ENVIRONMENT in LOCAL_ENVIRONMENTS

    @property
    def webhook_secret_keys(self) -> list[tuple[str, bytes]]:
        """(key id, key) pairs, the one sealing new values first; the development key when unset (local only,
        since the service refuses to start elsewhere without WEBHOOK_SECRET_KEYS)."""
        if self.WEBHOOK_SECRET_KEYS is None:
            return [(DEV_WEBHOOK_SECRET_KEY_ID, DEV_WEBHOOK_SECRET_KEY)]
        return _parse_secret_keys(self.WEBHOOK_SECRET_KEYS.get_secret_value())

    @property
    def allow_private_webhook_targets(self) -> bool:
        """Private and loopback targets are fine on a laptop, an SSRF hole anywhere else."""
        if self.WEBHOOK_ALLOW_PRIVATE_TARGETS is None:
            return self.is_local
        return self.WEBHOOK_ALLOW_PRIVATE_TARGETS

    @property
    def celery_visibility_timeout(self) -> int:
        """Longer than any retry delay, or Redis hands a delayed task to a second worker."""
        longest_delay = max(self.WEBHOOK_RETRY_MAX_SECONDS, self.WEBHOOK_RETRY_AFTER_MAX_SECONDS)
        return int(longest_delay + 2 * self.CELERY_TASK_TIME_LIMIT_SECONDS + 600)

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL for the async engine."""
        return self._postgres_url("postgresql+asyncpg")

    @property
    def dbmate_url(self) -> str:
        """URL for dbmate; local PostgreSQL has no TLS, so say so explicitly. `options` sets the lock timeout for
        the session (as `-clock_timeout=...`: dbmate re-encodes the URL for pg_dump, which would not read a
        space back), so every migration runs with it."""
        lock_timeout = round(self.DB_MIGRATION_LOCK_TIMEOUT_SECONDS * 1000)
        return self._postgres_url("postgres") + f"?sslmode=disable&options=-clock_timeout%3D{lock_timeout}"

    @property
    def redis_url(self) -> str:
        password = self.REDIS_PASSWORD.get_secret_value() if self.REDIS_PASSWORD else ""
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{self.REDIS_HOST}:{self.REDIS_PORT}/{self.REDIS_DB}"

    def _postgres_url(self, scheme: str) -> str:
        password = self.DB_PASSWORD.get_secret_value()
        user = quote(self.DB_USERNAME, safe="")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        return f"{scheme}://{auth}@{self.DB_HOST}:{self.DB_PORT}/{self.DB_NAME}"


def _parse_secret_keys(value: str) -> list[tuple[str, bytes]]:
    """`kid:base64,kid:base64` as (kid, key) pairs. Errors name the entry by position, never echo a key."""
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate((item.strip() for item in value.split(",") if item.strip()), start=1):
        key_id, separator, encoded = entry.partition(":")
        if not separator or not _KEY_ID.fullmatch(key_id):
            raise ValueError(
                f"WEBHOOK_SECRET_KEYS entry {position} is not `<key id>:<base64 key>` (key ids: A-Z a-z 0-9 _ . -)"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise ValueError(f"WEBHOOK_SECRET_KEYS entry {position} ({key_id}) is not valid base64") from None
        if len(key) != WEBHOOK_SECRET_KEY_BYTES:
            raise ValueError(f"WEBHOOK_SECRET_KEYS entry {position} ({key_id}) is not {WEBHOOK_SECRET_KEY_BYTES} bytes")
        if any(key_id == known for known, _ in keys):
            raise ValueError(f"WEBHOOK_SECRET_KEYS names key id {key_id} twice")
        keys.append((key_id, key))
    if not keys:
        raise ValueError("WEBHOOK_SECRET_KEYS is empty")
    return keys


@lru_cache
def get_settings() -> Settings:
    return Settings()
