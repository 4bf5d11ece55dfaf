"""Write the app's OpenAPI document to docs/openapi.json (used by `make openapi`).

The committed file is a snapshot of the API: tests/test_openapi_snapshot.py fails when the app's
schema differs from it, so every API change shows up in review as a change of this file.
`--check` only compares, and exits 1 when the file is out of date.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from app.core.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "docs" / "openapi.json"


class DefaultSettings(Settings):
    """Settings from the code's defaults alone: the document must not depend on who generates it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def openapi_document() -> dict[str, Any]:
    return create_app(DefaultSettings()).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.export_openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if the file is out of date")
    args = parser.parse_args(argv)

    current = render(openapi_document())
    committed = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else None
    relative = SNAPSHOT.relative_to(ROOT)
    if committed == current:
        print(f"{relative} is up to date.")
        return 0
    if args.check:
        print(f"{relative} is out of date: run `make openapi` and commit the result.", file=sys.stderr)
        return 1
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(current, encoding="utf-8")
    print(f"Wrote {relative}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
