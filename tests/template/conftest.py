"""Fixtures of the template's tests (`make test-template`)."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The virtualenv every generated project of the session installs into (its lock is the template's)."""
    return tmp_path_factory.mktemp("venv") / ".venv"
