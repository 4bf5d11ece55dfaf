"""scripts/scaffold_domain.py: name rules, registrations, and a generated domain that passes lint, mypy and tests."""

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.core.config import Settings
from scripts.scaffold_domain import (
    Domain,
    ScaffoldError,
    add_scopes,
    plan,
    pluralize,
    register_model,
    register_router,
)
from tests.support.database import drop

ROOT = Path(__file__).resolve().parents[2]
# Shared across runs, so that mypy only re-checks what the scaffold changed (seconds, not a cold start).
MYPY_CACHE = Path(tempfile.gettempdir()) / f"{ROOT.name}-scaffold-mypy-cache"
# Scaffolded in the tests; not "invoice", which a user of the template may well have scaffolded already.
PROBE = "scaffold_probe"


# ---- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("singular", "plural"),
    [
        ("invoice", "invoices"),
        ("category", "categories"),
        ("address", "addresses"),
        ("box", "boxes"),
        ("day", "days"),
        ("match_batch", "match_batches"),
        ("dish", "dishes"),
        ("status", "statuses"),
        ("line_item", "line_items"),
        ("sales_person", "sales_people"),
        ("child", "children"),
    ],
)
def test_pluralize(singular: str, plural: str) -> None:
    assert pluralize(singular) == plural


def test_domain_derives_every_name() -> None:
    domain = Domain.create("line_item")
    assert domain.table == "line_items"
    assert domain.resource == "line-items"
    assert domain.model == "LineItem"
    assert domain.scopes == ("line-items:read", "line-items:write")
    names = domain.substitutions()
    assert names["Table"] == "LineItemsTable"
    assert names["Service"] == "LineItemService"
    assert names["a_label"] == "a line item"
    assert Domain.create("invoice").substitutions()["a_label"] == "an invoice"


def test_table_can_be_overridden() -> None:
    assert Domain.create("person", "persons").table == "persons"
    assert Domain.create("news", "news").table == "news"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Invoice", "snake_case"),
        ("1invoice", "snake_case"),
        ("invoice-line", "snake_case"),
        ("line__item", "snake_case"),
        ("invoice_", "snake_case"),
        ("", "snake_case"),
        ("class", "keyword"),
        ("match", "keyword"),
        ("client", "clashes"),
        ("invoices", "singular"),
    ],
)
def test_bad_domain_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(ScaffoldError, match=reason):
        Domain.create(name)


@pytest.mark.parametrize(
    ("table", "reason"),
    [("Invoices", "snake_case"), ("order", "reserved"), ("session", "clashes"), ("a" * 48, "longer")],
)
def test_bad_table_names_are_refused(table: str, reason: str) -> None:
    with pytest.raises(ScaffoldError, match=reason):
        Domain.create("thing", table)


@pytest.mark.parametrize("name", ["webhook", "messaging", "message", "models", "pagination"])
def test_existing_domains_and_modules_are_refused(name: str) -> None:
    with pytest.raises(ScaffoldError, match="exists already"):
        plan(Domain.create(name, "things"))


def test_an_existing_table_is_refused() -> None:
    with pytest.raises(ScaffoldError, match="already exists"):
        plan(Domain.create("hook", "webhooks"))


@pytest.mark.parametrize("name", ["text", "field", "page_out"])
def test_names_that_would_shadow_an_import_are_refused(name: str) -> None:
    with pytest.raises(ScaffoldError, match="twice"):
        plan(Domain.create(name))


def test_migration_sorts_after_the_newest_even_with_a_slow_clock() -> None:
    result = plan(Domain.create(PROBE), now=datetime(2000, 1, 1, tzinfo=UTC))
    newest = max(p.name for p in (ROOT / "db" / "migrations").glob("*.sql"))
    assert result.migration is not None
    assert result.migration.name > newest
    assert result.migration.name.endswith(f"_create_{PROBE}s.sql")
    migration = result.created[result.migration]
    assert f"-- migrate:up\nCREATE TABLE {PROBE}s (" in migration
    assert f"CREATE INDEX {PROBE}s_client_page_idx" in migration
    assert migration.rstrip().endswith(f"-- migrate:down\nDROP TABLE {PROBE}s;")


# ---- registrations ----------------------------------------------------------------------------

API = '''"""Routers."""

from fastapi import APIRouter

from app.api.me.points import router as me_router

DOMAIN_ROUTERS: tuple[APIRouter, ...] = (me_router,)
'''

MODELS = """from app.db.message.model import Message
from app.db.webhook.model import Webhook

__all__ = ["Message", "Webhook"]
"""

SCOPES = """SCOPES: tuple[str, ...] = (
    "webhooks:read",
    "webhooks:write",
)  # tokens carry these
OTHER = 1
"""


def test_register_router_is_idempotent() -> None:
    once = register_router(API, "invoice")
    assert once == API.replace(
        "import router as me_router\n",
        "import router as me_router\nfrom app.api.invoice.points import router as invoice_router\n",
    ).replace("(me_router,)", "(me_router, invoice_router)")
    assert register_router(once, "invoice") == once


def test_register_model_is_idempotent_and_keeps_all_sorted() -> None:
    once = register_model(MODELS, "invoice", "Invoice")
    assert "from app.db.invoice.model import Invoice\n" in once
    assert '__all__ = ["Invoice", "Message", "Webhook"]' in once
    assert register_model(once, "invoice", "Invoice") == once


def test_add_scopes_is_idempotent_and_keeps_what_surrounds_the_tuple() -> None:
    once = add_scopes(SCOPES, ("invoices:read", "invoices:write"))
    assert once.startswith(
        'SCOPES: tuple[str, ...] = ("webhooks:read", "webhooks:write", "invoices:read", "invoices:write")'
        "  # tokens carry these\n"
    )
    assert once.endswith("OTHER = 1\n")
    assert add_scopes(once, ("invoices:read", "invoices:write")) == once


def test_registrations_refuse_files_they_cannot_understand() -> None:
    with pytest.raises(ScaffoldError, match="__all__"):
        register_model("from x import y\n", "invoice", "Invoice")
    with pytest.raises(ScaffoldError, match="SCOPES"):
        add_scopes("SCOPES = tuple(read_scopes())\n", ("a:read",))
    with pytest.raises(ScaffoldError, match="DOMAIN_ROUTERS"):
        register_router("from fastapi import APIRouter\n", "invoice")


# ---- a generated domain, end to end, in a copy of the repository -----------------------------


def _copy_repository(destination: Path) -> None:
    """The files git would commit (tracked and new, not ignored), with the existing .venv linked in."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        files = [ROOT / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: everything but the usual clutter
        skip = {".git", ".venv", ".poetry", ".mypy_cache", ".pytest_cache", ".ruff_cache", "node_modules"}
        files = [p for p in ROOT.rglob("*") if not skip & set(p.relative_to(ROOT).parts)]
    for source in files:
        if source.is_file() and source.parts[len(ROOT.parts)] != ".venv":
            target = destination / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / ".venv").symlink_to(ROOT / ".venv")


@pytest.fixture
def scaffold_database(settings: Settings) -> Iterator[str]:
    """A database name of its own, so the copy's test session never touches this session's databases."""
    name = f"scaffold_{uuid.uuid4().hex[:8]}"
    yield name
    for database in (f"{name}_test", f"{name}_test_migrations"):
        drop(settings.model_copy(update={"DB_NAME": database}))


def test_generated_domain_passes_lint_types_and_its_tests(tmp_path: Path, scaffold_database: str) -> None:
    repo = tmp_path / "repo"
    _copy_repository(repo)
    if not MYPY_CACHE.exists() and (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", MYPY_CACHE, dirs_exist_ok=True)  # a warm start
    bin_dir = repo / ".venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE_", "COVERAGE_"))}
    env.update(DB_NAME=scaffold_database, TEST_TEMPLATE_DB=f"{scaffold_database}_test")

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)  # noqa: S603

    scaffold = run(str(bin_dir / "python"), "-m", "scripts.scaffold_domain", "--name", PROBE)
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    assert "make migrate" in scaffold.stdout
    assert "make test" in scaffold.stdout
    assert list((repo / "db" / "migrations").glob(f"*_create_{PROBE}s.sql"))
    assert f'"/api/v1/{PROBE.replace("_", "-")}s/{{{PROBE}_id}}"' in (repo / "docs" / "openapi.json").read_text()

    again = run(str(bin_dir / "python"), "-m", "scripts.scaffold_domain", "--name", PROBE)
    assert again.returncode == 2
    assert "exists already" in again.stderr

    python_paths = [
        f"app/api/{PROBE}",
        f"app/db/{PROBE}",
        f"tests/api/{PROBE}",
        "app/api/router.py",
        "app/db/models.py",
        "app/core/security.py",
    ]
    checks = {
        "ruff check": [str(bin_dir / "ruff"), "check", "--no-cache", *python_paths],
        "ruff format": [str(bin_dir / "ruff"), "format", "--check", "--no-cache", *python_paths],
        "mypy": [str(bin_dir / "mypy"), "--cache-dir", str(MYPY_CACHE), *python_paths],
        "pytest": [
            str(bin_dir / "pytest"),
            "-q",
            "-p",
            "no:cacheprovider",
            f"tests/api/{PROBE}",
            "tests/db/test_schema.py",
            "tests/db/test_migrations.py",
            "tests/test_openapi_snapshot.py",
            "tests/test_layers.py",
        ],
    }
    # In parallel: the whole check costs as much as its slowest part.
    processes = {
        name: subprocess.Popen(  # noqa: S603
            command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for name, command in checks.items()
    }
    failures = []
    for name, process in processes.items():
        output, _ = process.communicate(timeout=300)
        if process.returncode != 0:
            failures.append(f"--- {name} (exit {process.returncode})\n{output}")
    if failures:
        pytest.fail("The scaffolded domain does not pass its checks:\n" + "\n".join(failures), pytrace=False)
