"""The suite's settings: a database and a Redis database of this pytest-xdist worker's own.

Nothing writes os.environ: tests build apps, engines and workers from these Settings objects, and a
subprocess (the real Celery worker) gets them as environment variables (`as_environment`).
"""

import os
from typing import Any

from app.core.config import Settings

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
# One migrated template per run, cloned per worker. Set TEST_TEMPLATE_DB to run two suites at once.
TEMPLATE_DB = os.environ.get("TEST_TEMPLATE_DB") or f"{Settings().DB_NAME}_test"
TEST_DB = f"{TEMPLATE_DB}_{_WORKER}" if _WORKER else TEMPLATE_DB
# A Redis database per worker (15, 14, ...), apart from the one a local development worker consumes.
# Set TEST_REDIS_DB to another first number to run two suites at once (with TEST_TEMPLATE_DB).
_FIRST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB") or 15)
TEST_REDIS_DB = _FIRST_REDIS_DB - int(_WORKER.removeprefix("gw")) if _WORKER else _FIRST_REDIS_DB
# Long enough for the non-local checks; obviously not a real secret.
SAFE_SECRET = "s" * 40
# A key ring of its own for settings outside local/test (which refuse the development key); not a real key.
SAFE_SECRET_KEYS = "tests:dGVzdHMtb25seS1rZXktbm90LWEtcmVhbC1rZXktMzI="  # b"tests-only-key-not-a-real-key-32"

_SUITE = {
    "APP_ENVIRONMENT": "test",
    "DB_NAME": TEST_DB,
    "REDIS_DB": TEST_REDIS_DB,
    # The suite sends far more than a minute's budget as "client-a"; tests/api/test_rate_limit.py sets its own.
    "RATE_LIMIT_PER_MINUTE": 1_000_000,
}


def test_settings(**overrides: Any) -> Settings:
    """The suite's settings (the environment's connection settings, this worker's databases) plus `overrides`."""
    return Settings(_env_file=None, **{**_SUITE, **overrides})


def as_environment(settings: Settings) -> dict[str, str]:
    """`settings` as the environment variables a subprocess reads them from."""
    values = settings.model_dump(mode="json", exclude_none=True)
    for name in ("DB_PASSWORD", "JWT_SECRET", "REDIS_PASSWORD", "SENTRY_DSN", "WEBHOOK_SECRET_KEYS"):
        secret = getattr(settings, name)
        if secret is not None:
            values[name] = secret.get_secret_value()
    return {name: ",".join(value) if isinstance(value, list) else str(value) for name, value in values.items()}


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, despite its name
