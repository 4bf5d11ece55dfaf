"""Rendering the Copier template and running what it generated (tests/template; `make test-template`).

The template is rendered from a temporary git repository holding the working tree as it is (uncommitted
changes included), so the tests check what would be committed, and never touch this checkout. Copier and
Poetry come from the environment (COPIER, POETRY: make test-template sets both); each generated project
runs its own `make install` into one virtualenv the session's projects share (the first install fills
it, the next ones find the same locked set installed), and gets database names of its own.
"""

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from app.core.config import Settings
from tests.support.database import drop
from tests.support.settings import test_settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_NAMES = ("fastapi-postgres-stack", "fastapi_postgres_stack")
# What is left of the example once it is removed: any of these in a file of the clean project is a leftover.
# ("message" alone is no good: log lines have messages, errors too.)
EXAMPLE_WORDS = re.compile(
    r"webhook|messaging|/messages|messages:(read|write)|message_id|fan[-_ ]?out|deliver(y|ies)\b|redeliver",
    re.IGNORECASE,
)
# Not searched: the template's history and design record (they name the template and its example on
# purpose), and the lock and dependency lines (dependencies go with `make lock`, not with the example).
NOT_SEARCHED = {"CHANGELOG.md", "docs/decisions.md", "poetry.lock"}
ALLOWED_LINES = {"pyproject.toml": re.compile(r"standardwebhooks")}
SKIPPED_DIRS = {".git", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__", ".tools"}


def run(
    command: Sequence[str | Path], cwd: Path, env: dict[str, str] | None = None, ok_codes: Sequence[int] = (0,)
) -> str:
    """Run `command`; on another exit status than `ok_codes`, fail with its output (the last 12 000 characters)."""
    result = subprocess.run(  # noqa: S603 - the tests' own commands
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode not in ok_codes:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{output[-12000:]}")
    return output


def tool(name: str) -> str:
    path = os.environ.get(name.upper())
    if not path:
        raise AssertionError(f"{name.upper()} is not set: run these tests with `make test-template`")
    return path


def git(*args: str, cwd: Path) -> str:
    return run(["git", "-c", "user.name=Template Tests", "-c", "user.email=tests@example.com", *args], cwd)


def template_repository(destination: Path) -> Path:
    """A git repository holding this checkout's working tree (tracked and new files, as they are now)."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git("init", "--quiet", "--initial-branch=main", cwd=destination)
    git("add", "--all", cwd=destination)
    git("commit", "--quiet", "--message=template", cwd=destination)
    return destination


def copier(*args: str | Path, cwd: Path) -> str:
    return run([tool("copier"), *args], cwd, env=clean_environment())


def copy_template(template: Path, destination: Path, *, example: bool, ref: str = "HEAD", name: str) -> Path:
    """`copier copy` with every question answered (the slug and description from their defaults)."""
    copier(
        "copy", "--trust", "--defaults", "--vcs-ref", ref,
        "--data", f"project_name={name}",
        "--data", f"include_example={'true' if example else 'false'}",
        template, destination, cwd=destination.parent,
    )  # fmt: skip
    return destination


def clean_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without what pytest, coverage or the virtualenv set for this suite."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_")) and key not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    return {**env, **overrides}


@dataclass
class Project:
    path: Path
    database: str  # TEST_TEMPLATE_DB of its suite
    venv: Path | None = None  # a virtualenv shared by the session's projects, linked as their .venv

    def make(self, *targets: str) -> str:
        env = clean_environment(
            TEST_TEMPLATE_DB=self.database,
            TEST_REDIS_DB=os.environ.get("TEST_REDIS_DB") or "15",
            DB_NAME=f"{self.database}_app",
        )
        if self.venv is not None:  # the libraries are the same: mypy need not check them again per project
            env["MYPY_CACHE_DIR"] = str(self.venv.parent / "mypy-cache")
        return run(["make", f"POETRY={tool('poetry')}", *targets], self.path, env)

    def suite(self) -> None:
        """The generated project's own install, lint and tests, as its README gives them."""
        if self.venv is not None:
            if not self.venv.exists():
                run(["python3", "-m", "venv", self.venv], self.path)
            (self.path / ".venv").symlink_to(self.venv)
        try:
            self.make("install")
            self.make("lint")
            self.make("test")
        finally:
            drop_databases(self.database)


def drop_databases(prefix: str) -> None:
    """Every database a generated project's suite made (its template, the workers' clones, scratch ones)."""
    settings: Settings = test_settings()

    async def names() -> list[str]:
        password = settings.DB_PASSWORD.get_secret_value() or None
        connection = await asyncpg.connect(
            host=settings.DB_HOST,
            port=settings.DB_PORT,
            user=settings.DB_USERNAME,
            password=password,
            database="postgres",
        )
        try:
            rows = await connection.fetch("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", prefix)
        finally:
            await connection.close()
        return [row["datname"] for row in rows]

    for name in asyncio.run(names()):
        drop(settings.model_copy(update={"DB_NAME": name}))


def files_of(project: Path) -> Iterable[tuple[str, str]]:
    """(relative path, text) of every text file of the generated project, outside caches and the venv."""
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if SKIPPED_DIRS & set(relative.parts) or not path.is_file():
            continue
        try:
            yield relative.as_posix(), path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def leftovers(project: Path, pattern: re.Pattern[str], skip: Iterable[str] = ()) -> list[str]:
    """`path:line: text` for each line of the project matching `pattern` (outside `skip`)."""
    found = []
    skip = set(skip)
    for relative, text in files_of(project):
        if relative in skip:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            allowed = ALLOWED_LINES.get(relative)
            if pattern.search(line) and not (allowed and allowed.search(line)):
                found.append(f"{relative}:{number}: {line.strip()[:160]}")
    return found


def names_pattern() -> re.Pattern[str]:
    return re.compile("|".join(re.escape(name) for name in TEMPLATE_NAMES), re.IGNORECASE)
