"""Settings: defaults, environment parsing, derived URLs and the refusal of unsafe production settings."""

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import DEV_JWT_SECRET, Settings, get_settings
from tests.support.settings import SAFE_SECRET_KEYS

SAFE_SECRET = "a-random-secret-of-forty-characters-0000"
REAL_ORIGIN = "https://app.example.com"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting comes from the environment (the test session sets APP_ENVIRONMENT and DB_NAME)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def fresh(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)


def safe(**overrides: Any) -> dict[str, Any]:
    """Settings a staging deployment may start with; tests break one thing at a time."""
    values: dict[str, Any] = {
        "APP_ENVIRONMENT": "staging",
        "JWT_SECRET": SAFE_SECRET,
        "WEBHOOK_SECRET_KEYS": SAFE_SECRET_KEYS,
        "CORS_ALLOW_ORIGINS": [REAL_ORIGIN],
        "DOCS_ENABLED": False,
    }
    return {**values, **overrides}


def test_defaults_run_locally_against_local_services(clean_env: pytest.MonkeyPatch) -> None:
    settings = fresh()

    assert settings.APP_ENVIRONMENT == "local"
    assert settings.is_local
    assert settings.database_url == "postgresql+asyncpg://postgres@localhost:5432/app"
    dbmate_options = "?sslmode=disable&options=-clock_timeout%3D5000"
    assert settings.dbmate_url == "postgres://postgres@localhost:5432/app" + dbmate_options
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.JWT_SECRET.get_secret_value() == DEV_JWT_SECRET
    assert settings.JWT_JWKS_URL is None
    assert settings.DOCS_ENABLED is True
    assert "http://localhost:3000" in settings.CORS_ALLOW_ORIGINS


def test_the_environment_overrides_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DB_HOST", "db")
    clean_env.setenv("DB_PORT", "6543")
    clean_env.setenv("REDIS_DB", "3")

    settings = fresh()

    assert settings.database_url == "postgresql+asyncpg://postgres@db:6543/app"
    assert settings.redis_url == "redis://localhost:6379/3"


def test_cors_origins_are_comma_separated_in_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CORS_ALLOW_ORIGINS", "https://a.example.com, https://b.example.com ,")

    assert fresh().CORS_ALLOW_ORIGINS == ["https://a.example.com", "https://b.example.com"]


def test_empty_optional_settings_in_the_environment_mean_unset(clean_env: pytest.MonkeyPatch) -> None:
    for name in ("JWT_ISSUER", "JWT_AUDIENCE", "JWT_JWKS_URL", "LOG_FORMAT"):
        clean_env.setenv(name, "")

    settings = fresh()

    assert (settings.JWT_ISSUER, settings.JWT_AUDIENCE, settings.JWT_JWKS_URL, settings.LOG_FORMAT) == (None,) * 4


def test_unknown_environment_is_rejected(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENVIRONMENT", "production")

    with pytest.raises(ValidationError, match="APP_ENVIRONMENT"):
        fresh()


def test_safe_non_local_settings_are_accepted(clean_env: pytest.MonkeyPatch) -> None:
    settings = fresh(**safe())

    assert not settings.is_local
    assert settings.CORS_ALLOW_ORIGINS == [REAL_ORIGIN]


def test_docs_may_be_published_when_said_so_explicitly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DOCS_ENABLED", "true")

    assert fresh(**{k: v for k, v in safe().items() if k != "DOCS_ENABLED"}).DOCS_ENABLED is True


def test_a_jwks_url_makes_the_shared_secret_irrelevant(clean_env: pytest.MonkeyPatch) -> None:
    jwks = {
        "JWT_JWKS_URL": "https://idp.example.com/jwks",
        "JWT_ISSUER": "https://idp.example.com/",
        "JWT_AUDIENCE": "x",
    }
    settings = fresh(**safe(JWT_SECRET=DEV_JWT_SECRET, **jwks))

    assert settings.JWT_JWKS_URL == "https://idp.example.com/jwks"


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"JWT_SECRET": DEV_JWT_SECRET}, "JWT_SECRET is the development secret"),
        ({"JWT_SECRET": "too-short"}, "JWT_SECRET is shorter than 32 characters"),
        ({"CORS_ALLOW_ORIGINS": [REAL_ORIGIN, "*"]}, "CORS_ALLOW_ORIGINS contains '*'"),
    ],
    ids=["dev-secret", "short-secret", "wildcard-origin"],
)
def test_unsafe_settings_are_refused_outside_local(
    clean_env: pytest.MonkeyPatch, environment: str, override: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        fresh(**safe(APP_ENVIRONMENT=environment, **override))

    assert f"APP_ENVIRONMENT={environment}" in str(caught.value)


def test_docs_on_by_default_are_refused_outside_local(clean_env: pytest.MonkeyPatch) -> None:
    values = safe()
    del values["DOCS_ENABLED"]

    with pytest.raises(ValidationError, match="API docs are on by default"):
        fresh(**values)


def test_a_wildcard_origin_from_the_environment_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENVIRONMENT", "prod")
    clean_env.setenv("CORS_ALLOW_ORIGINS", f"{REAL_ORIGIN},*")

    with pytest.raises(ValidationError, match="CORS_ALLOW_ORIGINS contains"):
        fresh(JWT_SECRET=SAFE_SECRET, DOCS_ENABLED=False)


def test_every_problem_is_reported_at_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("APP_ENVIRONMENT", "prod")

    with pytest.raises(ValidationError) as caught:
        fresh(CORS_ALLOW_ORIGINS="*")

    message = str(caught.value)
    assert "development secret" in message
    assert "contains '*'" in message
    assert "docs are on by default" in message


def test_the_refusal_does_not_print_secrets(clean_env: pytest.MonkeyPatch) -> None:
    # pydantic shows the start and the end of the input in its errors; every part of a secret must stay out.
    with pytest.raises(ValidationError) as caught:
        fresh(**safe(JWT_SECRET="q" * 40, DB_PASSWORD="w" * 40, CORS_ALLOW_ORIGINS="*"))

    message = str(caught.value)
    assert "contains '*'" in message
    assert "qqqq" not in message
    assert "wwww" not in message


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_environments_accept_development_defaults(clean_env: pytest.MonkeyPatch, environment: str) -> None:
    settings = fresh(APP_ENVIRONMENT=environment, CORS_ALLOW_ORIGINS="*")

    assert settings.is_local
    assert settings.CORS_ALLOW_ORIGINS == ["*"]


def test_derived_urls_encode_credentials(clean_env: pytest.MonkeyPatch) -> None:
    settings = fresh(
        DB_HOST="db.internal",
        DB_PORT=5433,
        DB_NAME="orders",
        DB_USERNAME="app user",
        DB_PASSWORD="p@ss:w/rd#1",
        REDIS_HOST="cache.internal",
        REDIS_PORT=6380,
        REDIS_DB=2,
        REDIS_PASSWORD="r3d!s@:/pw",
    )

    assert settings.database_url == "postgresql+asyncpg://app%20user:p%40ss%3Aw%2Frd%231@db.internal:5433/orders"
    assert settings.dbmate_url == (
        "postgres://app%20user:p%40ss%3Aw%2Frd%231@db.internal:5433/orders?sslmode=disable&options=-clock_timeout%3D5000"
    )
    assert settings.redis_url == "redis://:r3d%21s%40%3A%2Fpw@cache.internal:6380/2"


def test_secrets_are_masked_in_the_settings_repr(clean_env: pytest.MonkeyPatch) -> None:
    settings = fresh(DB_PASSWORD="db-password-xyz", REDIS_PASSWORD="redis-password-xyz")

    assert "password-xyz" not in repr(settings)
    assert DEV_JWT_SECRET not in repr(settings)


def test_get_settings_is_built_once() -> None:
    assert get_settings() is get_settings()


@pytest.mark.parametrize(
    ("environment", "setting", "allowed"),
    [("local", None, True), ("test", None, True), ("local", False, False), ("staging", None, False)],
)
def test_private_webhook_targets_default_to_local_only(
    clean_env: pytest.MonkeyPatch, environment: str, setting: bool | None, allowed: bool
) -> None:
    settings = fresh(**safe(APP_ENVIRONMENT=environment, WEBHOOK_ALLOW_PRIVATE_TARGETS=setting))

    assert settings.allow_private_webhook_targets is allowed
