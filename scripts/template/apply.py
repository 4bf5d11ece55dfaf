"""Copier's one task (copier.yml `_tasks`): turn a fresh copy of the template into the user's project.

Run in the new project's directory, from the template's own checkout (so this file is not copied):

    python apply.py --name "Billing API" --slug billing-api --description "..." --example=no

1. Rename: the template's name (fastapi-postgres-stack, and fastapi_postgres_stack) becomes the slug in every
   text file; the default database name `app` becomes the slug with underscores; the description goes where
   the template's own description was (pyproject, the app's OpenAPI description, README).
2. Without the example (`--example=no`): the example's files (example-files.txt) are deleted, the files that
   wire it into the rest are replaced by their example-free versions (slim/, the same paths), and the few
   lines elsewhere that mention it are removed by anchored edits below.

Every edit is anchored: the text it replaces must be found exactly as often as expected, or the script stops
with the file and the anchor it missed (a template change that moved an anchor fails the template's tests
instead of producing a half-renamed project). Standard library only: it runs on Copier's Python.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLIM = HERE / "slim"
EXAMPLE_FILES = HERE / "example-files.txt"

TEMPLATE_SLUG = "fastapi-postgres-stack"
TEMPLATE_SNAKE = TEMPLATE_SLUG.replace("-", "_")
TEMPLATE_DESCRIPTION = "Reference FastAPI + PostgreSQL service template: messages fanned out to signed webhooks."
APP_DESCRIPTION = "Messages fanned out to signed webhooks: the fastapi-postgres-stack example service."
SKIP_DIRS = {".git", ".venv", ".poetry", ".tools", "node_modules", "__pycache__"}


class AnchorError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"template: {message}")


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in `path`; `old` must occur exactly `count` times."""

    path: str
    old: str
    new: str
    count: int = 1


def apply_edit(root: Path, edit: Edit) -> None:
    file = root / edit.path
    if not file.is_file():
        raise AnchorError(f"{edit.path}: missing (anchor {edit.old[:60]!r})")
    text = file.read_text(encoding="utf-8")
    found = text.count(edit.old)
    if found != edit.count:
        raise AnchorError(f"{edit.path}: anchor found {found} times, expected {edit.count}: {edit.old[:200]!r}")
    file.write_text(text.replace(edit.old, edit.new), encoding="utf-8")


def text_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(root).parts):
            continue
        if path.is_file() and not path.is_symlink() and path.name != "poetry.lock":
            files.append(path)
    return files


def rename(root: Path, slug: str, name: str, description: str) -> None:
    snake = slug.replace("-", "_")
    for edit in rename_edits(slug, name, description, snake):
        apply_edit(root, edit)
    renamed = 0
    for file in text_files(root):
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if TEMPLATE_SLUG in text or TEMPLATE_SNAKE in text:
            file.write_text(text.replace(TEMPLATE_SLUG, slug).replace(TEMPLATE_SNAKE, snake), encoding="utf-8")
            renamed += 1
    if renamed < 10:  # the name is in the settings, pyproject, compose, the image, Bruno, Kubernetes...
        raise AnchorError(f"the template's name was found in {renamed} files only: is this the template?")
    openapi = root / "docs" / "openapi.json"
    document = json.loads(openapi.read_text(encoding="utf-8"))
    document["info"]["title"] = slug
    document["info"]["description"] = description
    # As scripts/export_openapi.py renders it.
    openapi.write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def rename_edits(slug: str, name: str, description: str, snake: str) -> list[Edit]:
    database = f"DB_NAME: str = {json.dumps(snake)}"
    return [
        Edit("pyproject.toml", f"description = {json.dumps(TEMPLATE_DESCRIPTION)}", f"description = {json.dumps(description)}"),
        Edit("app/main.py", f"description={json.dumps(APP_DESCRIPTION)}", f"description={json.dumps(description)}"),
        Edit("docs/openapi.json", json.dumps(APP_DESCRIPTION), json.dumps(description)),
        Edit("README.md", f"# {TEMPLATE_SLUG}\n", f"# {name}\n\n{description}\n"),
        Edit("app/core/config.py", 'DB_NAME: str = "app"', database),
        Edit(".env.example", "\nDB_NAME=app\n", f"\nDB_NAME={snake}\n"),
        Edit(".github/workflows/ci.yml", "DB_NAME: app\n", f"DB_NAME: {snake}\n"),
        Edit("deploy/kubernetes/base/config.env", "\nDB_NAME=app\n", f"\nDB_NAME={snake}\n"),
        Edit("docker-compose.yml", "${DB_NAME:-app}", f"${{DB_NAME:-{snake}}}", count=3),
    ]


def strip_example(root: Path) -> None:
    for line in EXAMPLE_FILES.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        target = root / entry
        if target.is_dir():
            shutil.rmtree(target)
        elif target.is_file():
            target.unlink()
        else:
            raise AnchorError(f"{entry} (example-files.txt) is not in the template")
    for source in sorted(SLIM.rglob("*")):
        if source.is_file() and "__pycache__" not in source.parts:
            relative = source.relative_to(SLIM)
            destination = root / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    for edit in STRIP_EDITS:
        apply_edit(root, edit)


# Lines outside the example that mention it (the files wiring it in are whole in slim/).
STRIP_EDITS: list[Edit] = []


def template_only(root: Path) -> None:
    """What only the template repository needs: its own tests' marker and its CI step."""
    for edit in TEMPLATE_ONLY_EDITS:
        apply_edit(root, edit)


TEMPLATE_ONLY_EDITS = [
    Edit(".ci/run", "make test-template\n", ""),
    Edit(
        "pyproject.toml",
        'addopts = "-ra --strict-markers -m \'not template\'"',
        'addopts = "-ra --strict-markers"',
    ),
    Edit("pyproject.toml", '    "template: renders the Copier template (make test-template)",\n', ""),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--slug", required=True)
    parser.add_argument("--description", required=True)
    parser.add_argument("--example", choices=("yes", "no"), required=True)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", args.slug):
        parser.error(f"--slug {args.slug!r}: lower-case letters, digits and single dashes")
    root: Path = args.root.resolve()
    template_only(root)
    if args.example == "no":
        strip_example(root)
    rename(root, args.slug, args.name.strip(), args.description.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
