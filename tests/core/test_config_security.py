"""The security settings: keys for secrets at rest, private webhook targets, JWKS, the egress proxy."""

import base64
import os
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import DEV_WEBHOOK_SECRET_KEY, DEV_WEBHOOK_SECRET_KEY_ID, Settings
from tests.support.settings import SAFE_SECRET, SAFE_SECRET_KEYS

KEY_A = base64.b64encode(os.urandom(32)).decode()
KEY_B = base64.b64encode(os.urandom(32)).decode()
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
        "WEBHOOK_SECRET_KEYS": SAFE_SECRET_KEYS,
        "CORS_ALLOW_ORIGINS": ["https://app.example.com"],
        "DOCS_ENABLED": False,
    }
    return Settings(_env_file=None, **{**values, **overrides})


def test_keys_are_listed_newest_first() -> None:
    settings = staging(WEBHOOK_SECRET_KEYS=f"2026-06:{KEY_B}, 2026-01:{KEY_A}")

    assert settings.webhook_secret_keys == [("2026-06", base64.b64decode(KEY_B)), ("2026-01", base64.b64decode(KEY_A))]


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_environments_seal_with_the_development_key(environment: str) -> None:
    settings = Settings(_env_file=None, APP_ENVIRONMENT=environment)  # type: ignore[arg-type]

    assert settings.webhook_secret_keys == [(DEV_WEBHOOK_SECRET_KEY_ID, DEV_WEBHOOK_SECRET_KEY)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (KEY_A, "entry 1 is not `<key id>:<base64 key>`"),
        (f"a b:{KEY_A}", "entry 1 is not `<key id>:<base64 key>`"),
        (f"a:{KEY_A},b:not*base64", r"entry 2 \(b\) is not valid base64"),
        (f"a:{base64.b64encode(os.urandom(16)).decode()}", r"entry 1 \(a\) is not 32 bytes"),
        (f"a:{KEY_A},a:{KEY_B}", "names key id a twice"),
        (" , ", "WEBHOOK_SECRET_KEYS is empty"),
    ],
    ids=["no-id", "bad-id", "bad-base64", "short-key", "duplicate-id", "empty"],
)
def test_malformed_keys_are_refused_without_printing_them(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(_env_file=None, WEBHOOK_SECRET_KEYS=value)  # type: ignore[arg-type]

    assert KEY_A not in str(caught.value)
    assert KEY_B not in str(caught.value)


def test_safe_security_settings_are_accepted_outside_local() -> None:
    settings = staging(**JWKS, WEBHOOK_EGRESS_PROXY="http://egress.internal:4750")

    assert settings.WEBHOOK_EGRESS_PROXY == "http://egress.internal:4750"
    assert not settings.allow_private_webhook_targets


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"WEBHOOK_SECRET_KEYS": None}, "WEBHOOK_SECRET_KEYS is not set"),
        (
            {"WEBHOOK_SECRET_KEYS": f"k:{base64.b64encode(DEV_WEBHOOK_SECRET_KEY).decode()}"},
            "WEBHOOK_SECRET_KEYS contains the development key",
        ),
        ({"WEBHOOK_ALLOW_PRIVATE_TARGETS": True}, "WEBHOOK_ALLOW_PRIVATE_TARGETS=true"),
        ({**JWKS, "JWT_JWKS_URL": "http://idp.example.com/jwks"}, "JWT_JWKS_URL must use https://"),
        ({**JWKS, "JWT_AUDIENCE": None}, "JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE"),
        ({**JWKS, "JWT_ISSUER": None}, "JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE"),
    ],
    ids=["no-key", "dev-key", "private-targets", "jwks-over-http", "jwks-no-audience", "jwks-no-issuer"],
)
def test_unsafe_security_settings_are_refused_outside_local(
    environment: str, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        staging(APP_ENVIRONMENT=environment, **overrides)

    assert f"APP_ENVIRONMENT={environment}" in str(caught.value)


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_environments_may_use_private_targets_and_a_plain_http_jwks(environment: str) -> None:
    settings = Settings(
        _env_file=None,
        APP_ENVIRONMENT=environment,  # type: ignore[arg-type]
        WEBHOOK_ALLOW_PRIVATE_TARGETS=True,
        JWT_JWKS_URL="http://127.0.0.1:9999/jwks",
    )

    assert settings.allow_private_webhook_targets


@pytest.mark.parametrize("proxy", ["egress.internal:4750", "socks5://egress.internal:1080", "http://"])
def test_the_egress_proxy_must_be_an_http_proxy_url(proxy: str) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_EGRESS_PROXY must be an http"):
        Settings(_env_file=None, WEBHOOK_EGRESS_PROXY=proxy)


def test_empty_security_settings_in_the_environment_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET_KEYS", "")
    monkeypatch.setenv("WEBHOOK_EGRESS_PROXY", "")

    settings = Settings(_env_file=None)

    assert (settings.WEBHOOK_SECRET_KEYS, settings.WEBHOOK_EGRESS_PROXY) == (None, None)
