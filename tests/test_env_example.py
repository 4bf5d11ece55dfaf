"""`.env.example` documents every setting, and loads as it stands."""

import re
from pathlib import Path

from app.core.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
# `NAME=value`, or `# NAME=value` for an optional setting shown commented out.
_ASSIGNMENT = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def test_env_example_names_every_setting_and_nothing_else() -> None:
    documented = set(_ASSIGNMENT.findall(ENV_EXAMPLE.read_text()))
    assert documented == set(Settings.model_fields)


def test_env_example_values_are_the_defaults() -> None:
    # Copying the example changes nothing: what it shows is what an unset variable means.
    from_example = Settings(_env_file=ENV_EXAMPLE).model_dump()
    defaults = Settings(_env_file=None).model_dump()
    assert from_example == defaults
