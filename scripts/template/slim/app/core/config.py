"""Application settings: the only module that reads the environment."""

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
    # Per process (API worker or Celery worker process); sized in the README's "Connection budget" (Deploy).
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
    # 503). Above DB_POOL_SIZE so the pool stays busy (app/web/middleware/admission.py).
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

    # Celery
    CELERY_TASK_TIME_LIMIT_SECONDS: int = Field(default=120, ge=1)
    CELERY_HOUSEKEEPING_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)

    # Tasks in flight at once per worker process (threads of Celery's pool; app/worker/runtime.py)
    CELERY_CONCURRENCY: int = Field(default=128, ge=1)

    # Observability
    SENTRY_DSN: SecretStr | None = None
    SENTRY_TRACES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    SENTRY_PROFILES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    # The standard OpenTelemetry name: the collector's base URL; spans are POSTed to <url>/v1/traces.
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None

    # Rate limiting
    RATE_LIMIT_PER_MINUTE: int = Field(default=600, ge=1)
    RATE_LIMIT_FAIL_OPEN: bool = True

    # Security: identity-provider keys
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
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
        """Outside local/test: a JWKS endpoint reached over TLS whose tokens are checked for this service
        (issuer and audience)."""
        problems: list[str] = []
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
    def celery_visibility_timeout(self) -> int:
        """Longer than any delay a task is published with (countdown, eta: up to 5 minutes here; raise it
        for longer ones), or Redis hands the delayed task to a second worker."""
        longest_delay = 300
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


@lru_cache
def get_settings() -> Settings:
    return Settings()
