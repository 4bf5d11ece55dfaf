"""`make token`: a one-hour development token with every scope, as the last line of the output."""

import os
import subprocess
import sys
from pathlib import Path

from jose import jwt

from app.core.config import Settings
from app.core.security import SCOPES

ROOT = Path(__file__).resolve().parents[2]


def run_token_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, a module of the repository
        [sys.executable, "-m", "scripts.token", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        check=False,
        timeout=30,
    )


def test_prints_a_verifiable_token_as_the_last_line(settings: Settings) -> None:
    result = run_token_script("--sub", "alice")

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, settings.JWT_SECRET.get_secret_value(), algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["scope"].split() == list(SCOPES)
    assert claims["exp"] - claims["iat"] == 3600
    assert "alice" in result.stderr


def test_refuses_when_tokens_come_from_an_identity_provider() -> None:
    result = run_token_script("--sub", "alice", JWT_JWKS_URL="https://idp.example.com/jwks")

    assert result.returncode != 0
    assert result.stdout == ""
    assert "JWT_JWKS_URL" in result.stderr
