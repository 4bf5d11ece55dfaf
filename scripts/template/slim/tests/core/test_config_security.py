"""The security settings outside local/test: a JWKS endpoint over TLS, its tokens checked for this service."""

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import Settings
from tests.support.settings import SAFE_SECRET

JWKS = {"JWT_JWKS_URL": "https://idp.example.com/jwks", "JWT_ISSUER": "https://idp.example.com/", "JWT_AUDIENCE": "api"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting comes from the environment (the test session sets APP_ENVIRONMENT and DB_NAME)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)


def staging(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "APP_ENVIRONMENT": "staging",
        "JWT_SECRET": SAFE_SECRET,
        "CORS_ALLOW_ORIGINS": ["https://app.example.com"],
        "DOCS_ENABLED": False,
    }
    return Settings(_env_file=None, **{**values, **overrides})


def test_safe_security_settings_are_accepted_outside_local() -> None:
    settings = staging(**JWKS)

    assert (settings.JWT_JWKS_URL, settings.JWT_ISSUER) == ("https://idp.example.com/jwks", "https://idp.example.com/")


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({**JWKS, "JWT_JWKS_URL": "http://idp.example.com/jwks"}, "JWT_JWKS_URL must use https://"),
        ({**JWKS, "JWT_AUDIENCE": None}, "JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE"),
        ({**JWKS, "JWT_ISSUER": None}, "JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE"),
    ],
    ids=["jwks-over-http", "jwks-no-audience", "jwks-no-issuer"],
)
def test_unsafe_security_settings_are_refused_outside_local(
    environment: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        staging(APP_ENVIRONMENT=environment, **overrides)

    assert f"APP_ENVIRONMENT={environment}" in str(caught.value)


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_environments_may_use_a_plain_http_jwks(environment: str) -> None:
    settings = Settings(_env_file=None, APP_ENVIRONMENT=environment, JWT_JWKS_URL="http://127.0.0.1:9999/jwks")  # type: ignore[arg-type]

    assert settings.JWT_JWKS_URL == "http://127.0.0.1:9999/jwks"


def test_an_empty_jwks_url_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWT_JWKS_URL", "")

    assert Settings(_env_file=None).JWT_JWKS_URL is None
