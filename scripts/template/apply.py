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
import ast
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


EVERY = -1


class AnchorError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"template: {message}")


@dataclass(frozen=True)
class Edit:
    """Replace `old` by `new` in `path`; `old` must occur exactly `count` times."""

    path: str
    old: str
    new: str
    count: int = 1  # EVERY: each occurrence, at least one
    through: str | None = None  # given: `old` starts a block of lines that ends with the line starting `through`


def apply_edit(root: Path, edit: Edit) -> None:
    file = root / edit.path
    if not file.is_file():
        raise AnchorError(f"{edit.path}: missing (anchor {edit.old[:60]!r})")
    text = file.read_text(encoding="utf-8")
    if edit.through is not None:
        start = text.find(edit.old)
        end = text.find(edit.through, start) if start >= 0 else -1
        if start < 0 or end < 0 or text.count(edit.old) != 1:
            raise AnchorError(f"{edit.path}: block {edit.old[:60]!r} .. {edit.through[:60]!r} not found once")
        end = text.index("\n", end) + 1
        file.write_text(text[:start] + edit.new + text[end:], encoding="utf-8")
        return
    found = text.count(edit.old)
    if found != edit.count and not (edit.count == EVERY and found):
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
    quoted = json.dumps(description)  # a valid TOML and Python string too
    return [
        Edit("pyproject.toml", f"description = {json.dumps(TEMPLATE_DESCRIPTION)}", f"description = {quoted}"),
        Edit("app/main.py", f"description={json.dumps(APP_DESCRIPTION)}", f"description={quoted}"),
        Edit("docs/openapi.json", json.dumps(APP_DESCRIPTION), json.dumps(description)),
        Edit("README.md", f"# {TEMPLATE_SLUG}\n", f"# {name}\n\n{description}\n"),
        Edit("app/core/config.py", 'DB_NAME: str = "app"', database),
        Edit(".env.example", "\nDB_NAME=app\n", f"\nDB_NAME={snake}\n"),
        Edit(".github/workflows/ci.yml", "DB_NAME: app\n", f"DB_NAME: {snake}\n"),
        Edit("deploy/kubernetes/base/config.env", "\nDB_NAME=app\n", f"\nDB_NAME={snake}\n"),
        Edit("docker-compose.yml", "${DB_NAME:-app}", f"${{DB_NAME:-{snake}}}", count=3),
        Edit("tests/core/test_config.py", "@localhost:5432/app", f"@localhost:5432/{snake}", count=2),
        Edit("tests/core/test_config.py", '@db:6543/app"', f'@db:6543/{snake}"'),
    ]


def drop_definitions(root: Path, path: str, *names: str) -> None:
    """Remove the top-level functions or classes `names` of a Python file (with their decorators and the
    blank lines after them); each must be there."""
    file = root / path
    if not file.is_file():
        raise AnchorError(f"{path}: missing (definitions {', '.join(names)})")
    lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
    spans = {}
    for node in ast.parse("".join(lines)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name in names:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            last = node.end_lineno or node.lineno
            while last < len(lines) and not lines[last].strip():
                last += 1
            spans[node.name] = (first, last)
    missing = [name for name in names if name not in spans]
    if missing:
        raise AnchorError(f"{path}: no top-level {', '.join(missing)}")
    for first, last in sorted(spans.values(), reverse=True):
        del lines[first:last]
    file.write_text("".join(lines).rstrip() + "\n", encoding="utf-8")


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
    for path, names in DROPPED_DEFINITIONS.items():
        drop_definitions(root, path, *names)
    for edit in STRIP_EDITS:
        apply_edit(root, edit)


def block(path: str, first: str, last: str, new: str = "") -> Edit:
    """Replace the lines from the one starting with `first` through the one starting with `last` (both
    anchors must be found once, in that order)."""
    return Edit(path, first, new, count=1, through=last)


# Tests (and fixtures) outside the example's folders that exercise the example: they go with it.
DROPPED_DEFINITIONS: dict[str, tuple[str, ...]] = {
    "tests/conftest.py": ("webhook_client",),
    "tests/core/test_config.py": ("test_private_webhook_targets_default_to_local_only",),
    "tests/core/test_logging.py": (
        "debug_app",
        "debug_client",
        "test_a_real_request_logs_no_credentials_and_every_line_carries_its_request_id",
        "test_an_outgoing_signed_webhook_call_logs_no_secret_signature_or_token",
    ),
    "tests/core/test_telemetry.py": (
        "test_a_request_is_one_trace_with_its_sql_under_the_request_span",
        "test_the_trace_context_goes_into_the_task_message",
    ),
    "tests/db/test_engine.py": ("test_messages_lock_waits_no_longer_than_the_lock_timeout",),
    "tests/test_main.py": ("test_the_target_guard_resolves_with_a_deadline_and_threads_of_its_own",),
    "tests/web/test_openapi_problems.py": (
        "test_the_conflict_responses_are_problems",
        "test_messaging_routes_declare_their_409",
        "test_a_real_401_is_a_problem",
        "test_a_real_422_is_a_problem_with_field_errors",
    ),
    # The body-parsing order and the errors of a route with a body need the example's routes with bodies.
    "tests/api/test_auth.py": (
        "test_a_body_that_is_not_json_is_422_before_the_token_is_looked_at",
        "test_a_json_body_that_breaks_the_schema_is_401_without_a_valid_token",
        "test_malformed_json_with_a_valid_token_is_422",
        "test_any_invalid_request_without_a_token_is_401",
    ),
    "tests/api/test_rate_limit.py": (
        "test_errors_raised_by_the_route_carry_the_headers_too",
        "test_a_body_that_is_not_json_is_counted_when_the_token_is_valid",
        "test_a_malformed_body_without_a_valid_token_is_422_and_not_counted",
        "test_a_schema_invalid_body_without_a_token_is_still_401",
    ),
    "tests/web/test_errors.py": ("test_405_allow_names_every_route_at_the_path",),
    "tests/web/test_database_errors.py": ("test_a_row_locked_past_the_lock_timeout_is_a_503",),
    "tests/scripts/test_scaffold_domain.py": ("test_an_existing_table_is_refused",),
}

# Lines outside the example that mention it (the files wiring it in are whole in slim/).
STRIP_EDITS: list[Edit] = [
    # app/
    Edit("app/api/deps.py", "from app.clients.webhooks.target import TargetGuard\n", ""),
    Edit("app/api/deps.py", "from app.core.encryption import KeyRing\n", ""),
    block("app/api/deps.py", "async def get_target_guard(", "    return keyring\n"),
    Edit("app/api/deps.py", "\n\n\n\n\nSettingsDep", "\n\n\nSettingsDep"),
    Edit("app/api/deps.py", "TargetGuardDep = Annotated[TargetGuard, Depends(get_target_guard)]\n", ""),
    Edit("app/api/deps.py", "KeyRingDep = Annotated[KeyRing, Depends(get_keyring)]\n", ""),
    Edit(
        "app/api/problems.py",
        "\nIDEMPOTENCY_CONFLICT = problem_responses(\n"
        '    409, description="The Idempotency-Key was already used with a different request body."\n)\n'
        "REDELIVERY_CONFLICT = problem_responses(\n"
        '    409, description="The message is still being delivered, or has no failed delivery to re-send."\n)\n'
        "WEBHOOK_LIMIT_CONFLICT = problem_responses(\n"
        '    409, description="The client already has WEBHOOK_MAX_PER_CLIENT webhooks; delete one to register another."'
        "\n)\n",
        "",
    ),
    Edit(
        "app/api/problems.py",
        'adds it with `responses=`, e.g. `@router.post("", responses=IDEMPOTENCY_CONFLICT)`.',
        'adds it with `responses=`, e.g. `responses=problem_responses(409, description="...")`.',
    ),
    Edit(
        "app/api/health/service.py",
        "Without Redis the API still accepts messages (they stay pending and housekeeping enqueues them once the\n"
        "broker is back) and the rate limiter fails open;",
        "Without Redis the API still answers (tasks it would publish fail until the broker is back) and the\n"
        "rate limiter fails open;",
    ),
    Edit(
        "app/api/health/points.py",
        '"degraded" (messages are accepted and queued once it is back); only',
        '"degraded" (the API goes on answering); only',
    ),
    Edit(
        "app/core/logging.py",
        '    # Standard Webhooks signing secrets and signatures ("v1,<base64 HMAC-SHA256>").\n'
        '    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),\n'
        '    (re.compile(r"\\bv1,[A-Za-z0-9+/]{16,}={0,2}"), f"v1,{REDACTED}"),\n',
        "",
    ),
    Edit(
        "app/core/security.py",
        'SCOPES: tuple[str, ...] = ("webhooks:read", "webhooks:write", "messages:read", "messages:write")',
        "# Every scope the API checks; `make domain` adds each new domain's two.\nSCOPES: tuple[str, ...] = ()",
    ),
    Edit("app/core/telemetry.py", "enqueued and their webhook calls.", "enqueued and their HTTP calls."),
    Edit(
        "app/core/outages.py",
        "Used by the API's database errors (app/web/database_errors.py), its publisher"
        " (app/api/messaging/handoff.py),\nthe rate limiter and the worker's housekeeping and sweep.\n",
        "Used by the API's database errors (app/web/database_errors.py) and the rate limiter.\n",
    ),
    Edit("app/worker/acks.py", "\ntwice (a fan-out of a delivered message does nothing).\n", "\ntwice.\n"),
    Edit(
        "app/db/base_table.py",
        '(`all_by(col(Message.status).in_(...), client_id="a")`, `first_by(col(Webhook.description).is_(None))`).',
        '(`all_by(col(Invoice.status).in_(...), client_id="a")`, `first_by(col(Invoice.paid_at).is_(None))`).',
    ),
    Edit(
        "app/db/base_table.py",
        "Subclass as `class MessagesTable(BaseTable[Message])` and name the model: `model = Message`.",
        "Subclass as `class InvoicesTable(BaseTable[Invoice])` and name the model: `model = Invoice`.",
    ),
    Edit(
        "app/web/middleware/request_context.py",
        '"/messages/{message_id}" of "/api/v1/messages/{message_id}"',
        '"/invoices/{invoice_id}" of "/api/v1/invoices/{invoice_id}"',
    ),
    Edit(
        "scripts/scaffold_domain.py",
        "Scaffold a domain: every layer the webhook example has,",
        "Scaffold a domain: every layer a domain has,",
    ),
    Edit("scripts/scaffold_domain.py", "Scopes: like the webhook routes, the generated", "Scopes: the generated"),
    # tests/
    Edit("tests/conftest.py", "from app.clients.webhooks.client import WebhookClient\n", ""),
    Edit("tests/conftest.py", "from app.clients.webhooks.target import TargetGuard\n", ""),
    Edit("tests/conftest.py", "from tests.support.sealing import KEYRING\n", ""),
    Edit("tests/test_main.py", "from app.clients.webhooks.target import DnsResolver, TargetGuard\n", ""),
    Edit("tests/test_main.py", "from app.core.encryption import KeyRing\n", ""),
    Edit(
        "tests/support/settings.py",
        """# A key ring of its own for settings outside local/test (which refuse the development key); not a real key.
SAFE_SECRET_KEYS = "tests:dGVzdHMtb25seS1rZXktbm90LWEtcmVhbC1rZXktMzI="  # b"tests-only-key-not-a-real-key-32"
""",
        "",
    ),
    Edit(
        "tests/support/settings.py",
        '("DB_PASSWORD", "JWT_SECRET", "REDIS_PASSWORD", "SENTRY_DSN", "WEBHOOK_SECRET_KEYS")',
        '("DB_PASSWORD", "JWT_SECRET", "REDIS_PASSWORD", "SENTRY_DSN")',
    ),
    Edit("tests/web/middleware/test_security_headers.py", "        WEBHOOK_SECRET_KEYS=SAFE_SECRET_KEYS,\n", ""),
    Edit("tests/web/middleware/test_security_headers.py", "SAFE_SECRET, SAFE_SECRET_KEYS", "SAFE_SECRET"),
    Edit("tests/core/test_logging.py", "        WEBHOOK_SECRET_KEYS=SAFE_SECRET_KEYS,\n", ""),
    Edit("tests/core/test_logging.py", "SAFE_SECRET, SAFE_SECRET_KEYS, test_settings", "SAFE_SECRET, test_settings"),
    Edit(
        "tests/core/test_logging.py",
        "The redaction tests drive real requests and\na real outgoing webhook call with every library at DEBUG, "
        "so SQL parameters and HTTP traffic are logged.",
        "The redaction tests cover the token shapes\nand the configured secrets' values.",
    ),
    Edit(
        "tests/core/test_logging.py",
        """        (f"INSERT ... ('https://example.com', '{WEBHOOK_SECRET}')", WEBHOOK_SECRET),
        (f"webhook-signature: {SIGNATURE}", SIGNATURE.removeprefix("v1,")),
        (f"webhook-signature: {SIGNATURE} v1,bm90LWEtcmVhbC1zaWduYXR1cmUtYXQtYWxs", "bm90LWEtcmVhbC1zaWdu"),
""",
        "",
    ),
    Edit("tests/core/test_logging.py", 'SIGNATURE = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="\n', ""),
    Edit("tests/core/test_logging.py", 'WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n', ""),
    Edit("tests/core/test_logging.py", "from app.clients.webhooks.client import WebhookClient\n", ""),
    Edit("tests/core/test_logging.py", "from app.clients.webhooks.models import WebhookMessage\n", ""),
    Edit("tests/core/test_logging.py", "from app.clients.webhooks.signing import generate_secret\n", ""),
    Edit("tests/core/test_logging.py", "from tests.support.sealing import sealed\n", ""),
    Edit("tests/core/test_telemetry.py", "from app.worker.tasks import FAN_OUT_TASK\n", ""),
    Edit("tests/db/test_engine.py", "from app.db.message.table import MessagesTable\n", ""),
    Edit(
        "tests/web/test_openapi_problems.py",
        "from app.api.problems import IDEMPOTENCY_CONFLICT, REDELIVERY_CONFLICT\n",
        "",
    ),
    Edit("tests/core/test_config.py", "from tests.support.settings import SAFE_SECRET_KEYS\n", ""),
    Edit("tests/core/test_config.py", '        "WEBHOOK_SECRET_KEYS": SAFE_SECRET_KEYS,\n', ""),
    Edit("tests/db/test_schema.py", '    assert models, "no models registered"\n', ""),
    Edit("tests/api/test_me.py", 'assert "messages:write" in body["scopes"]', 'assert body["scopes"] == list(SCOPES)'),
    Edit("tests/api/test_me.py", "import httpx\n", "import httpx\n\nfrom app.core.security import SCOPES\n"),
    Edit("tests/api/test_providers.py", "assert len(routes) > 10", "assert routes"),
    Edit("tests/web/test_openapi_problems.py", "assert len(api_operations) >= 10", "assert api_operations"),
    Edit("tests/web/test_errors.py", 'path = f"/api/v1/messages/{uuid.uuid4()}"', 'path = "/test/row"'),
    Edit(
        "tests/web/test_errors.py",
        "app = build_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_SECONDS=0.2)",
        "app = build_app(errors_router, DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_TIMEOUT_SECONDS=0.2)",
    ),
    Edit(
        "tests/web/test_errors.py",
        '@errors_router.get("/unavailable")\n',
        """@errors_router.get("/row")
async def missing_row(session: SessionDep) -> None:
    await session.execute(text("SELECT 1"))
    raise NotFoundError("No such row.")


@errors_router.get("/unavailable")
""",
    ),
    Edit(
        "tests/web/test_errors.py",
        "from app.core.config import Settings\n",
        "from app.api.deps import SessionDep\nfrom app.core.config import Settings\n",
    ),
    Edit("tests/web/test_errors.py", 'NotFoundError("No webhook 42.")', 'NotFoundError("No invoice 42.")'),
    Edit(
        "tests/db/test_migrations.py",
        "    assert fully_migrated\n    previous = fully_migrated",
        "    previous = fully_migrated",
    ),
    Edit(
        "tests/db/test_migrations.py",
        'assert current != previous, f"the down of {migration.name} changed nothing"',
        'assert current != previous or not previous, f"the down of {migration.name} changed nothing"',
    ),
    Edit(
        "tests/web/test_database_errors.py",
        """    # A delivery of a message that does not exist: a foreign-key violation no code path expects.
    await session.execute(
        text(
            "INSERT INTO deliveries (message_id, webhook_id, attempt, status, duration_ms)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'failed', 1)"
        )
    )""",
        """    # A NULL where none is allowed: an integrity error no code path expects.
    await session.execute(text("CREATE TEMPORARY TABLE orphans (parent_id int NOT NULL) ON COMMIT DROP"))
    await session.execute(text("INSERT INTO orphans VALUES (NULL)"))""",
    ),
    Edit(
        "tests/scripts/test_scaffold_domain.py",
        '["webhook", "messaging", "message", "models", "pagination"]',
        '["me", "health", "models", "pagination"]',
    ),
    # Imports only the dropped tests used.
    Edit(
        "tests/core/test_logging.py",
        "from collections.abc import AsyncIterator, Callable, Iterator",
        "from collections.abc import Callable, Iterator",
    ),
    Edit("tests/core/test_logging.py", "import httpx\n", ""),
    Edit("tests/core/test_logging.py", "from fastapi import FastAPI\n", ""),
    Edit("tests/core/test_logging.py", "from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession\n", ""),
    Edit("tests/core/test_logging.py", "from app.api.deps import get_session\n", ""),
    Edit("tests/core/test_logging.py", "from app.core.time import utcnow\n", ""),
    Edit("tests/core/test_logging.py", "from app.web.middleware.request_context import REQUEST_ID_HEADER\n", ""),
    Edit("tests/core/test_logging.py", "from tests.support.apps import build_app, serve\n", ""),
    Edit("tests/core/test_logging.py", "from tests.support.receiver import Receiver\n", ""),
    Edit("tests/core/test_telemetry.py", "import json\n", ""),
    Edit("tests/core/test_telemetry.py", "from redis import Redis\n", ""),
    Edit("tests/core/test_telemetry.py", "from app.core.config import Settings\n", ""),
    Edit("tests/db/test_engine.py", "import uuid\n", ""),
    Edit("tests/db/test_engine.py", "from app.db.errors import is_database_unavailable\n", ""),
    Edit("tests/web/test_database_errors.py", "import uuid\n", ""),
    Edit("tests/web/test_database_errors.py", "from tests.support.tokens import HeadersFactory\n", ""),
    Edit("tests/web/test_errors.py", "import uuid\n", ""),
    Edit("tests/web/test_openapi_problems.py", "import httpx\n", ""),
    Edit("tests/web/test_openapi_problems.py", "from tests.support.problems import assert_problem\n", ""),
    # .env.example documents every setting (tests/test_env_example.py): the example's go with it.
    block(".env.example", "# --- Webhook delivery ---", "IDEMPOTENCY_KEY_TTL_HOURS=24"),
    Edit(".env.example", "\n\n\n# --- Celery ---", "\n\n# --- Celery ---"),
    Edit(
        ".env.example",
        "# How often beat runs the housekeeping: re-queueing, and the purges (one bounded batch each per run:\n"
        "# 5,000 delivery rows and 1,000 messages a minute at the default).\n",
        "# How often beat runs the housekeeping (the example task: app/worker/tasks.py).\n",
    ),
    block(
        ".env.example",
        "# --- Security: outbound webhook requests,",
        "# WEBHOOK_EGRESS_PROXY=",
        "# --- Security: identity-provider keys " + "-" * 60 + "\n",
    ),
    block(
        ".env.example",
        "# --- Delivery throughput and isolation",
        "MESSAGE_CLAIM_LEASE_SECONDS=",
        "# --- Worker (each worker process) " + "-" * 64 + "\n"
        "# Tasks a worker process runs at once (threads of Celery's threads pool, all on one event loop).\n"
        "CELERY_CONCURRENCY=128\n",
    ),
    # Scope names in tests of authentication: any names do, the example's go.
    *(
        Edit(path, old, new, count=EVERY)
        for path in ("tests/api/test_auth.py", "tests/core/test_security.py")
        for old, new in (("webhooks:", "invoices:"), ("messages:", "reports:"))
    ),
    Edit("tests/api/test_auth_jwks.py", "messages:", "reports:", count=EVERY),
    Edit(
        "tests/scripts/test_scaffold_domain.py",
        "from app.db.message.model import Message\n",
        "from app.db.order.model import Order\n",
    ),
    Edit(
        "tests/scripts/test_scaffold_domain.py",
        "from app.db.webhook.model import Webhook\n",
        "from app.db.report.model import Report\n",
    ),
    Edit("tests/scripts/test_scaffold_domain.py", '__all__ = ["Message", "Webhook"]', '__all__ = ["Order", "Report"]'),
    Edit(
        "tests/scripts/test_scaffold_domain.py", '["Invoice", "Message", "Webhook"]', '["Invoice", "Order", "Report"]'
    ),
    Edit("tests/scripts/test_scaffold_domain.py", '"webhooks:read"', '"reports:read"', count=EVERY),
    Edit("tests/scripts/test_scaffold_domain.py", '"webhooks:write"', '"reports:write"', count=EVERY),
    Edit("tests/core/test_logging.py", "POST /api/v1/messages 202", "POST /api/v1/invoices 201"),
    Edit(
        "tests/core/test_logging.py",
        'logger.info("Delivered {message_id} in {attempts} attempts", message_id="m-1", attempts=2)',
        'logger.info("Sent {invoice_id} in {attempts} attempts", invoice_id="i-1", attempts=2)',
    ),
    Edit("tests/core/test_logging.py", '{"message_id": "m-1", "attempts": 2,', '{"invoice_id": "i-1", "attempts": 2,'),
    Edit("tests/core/test_logging.py", '"Delivered m-1 in 2 attempts"', '"Sent i-1 in 2 attempts"'),
    # Dependencies stay until `make lock` without them (the lock's hash covers them); only comments change.
    Edit(
        "pyproject.toml",
        "    # AES-GCM for webhook signing secrets at rest (app/core/encryption.py); also python-jose's backend.\n",
        "    # python-jose's cryptographic backend.\n",
    ),
    Edit(
        "pyproject.toml",
        "    # The API's outgoing client (JWKS) and webhook URL parsing (app/clients/webhooks/target.py).\n",
        "    # The API's outgoing client (JWKS).\n",
    ),
    Edit(
        "pyproject.toml",
        "    # Webhook deliveries (app/clients/webhooks/transport.py): about a tenth of httpx's CPU per request.\n",
        "",
    ),
    # Deployment: settings and comments of the example.
    Edit("deploy/kubernetes/base/config.env", "WEBHOOK_ALLOW_PRIVATE_TARGETS=false\n", ""),
    Edit(
        "deploy/kubernetes/base/worker.yaml",
        "# The Celery worker: delivers webhooks. Scale",
        "# The Celery worker: runs the tasks. Scale",
    ),
    Edit(
        "deploy/kubernetes/base/worker.yaml",
        "            # (claim, record), never across a delivery, so 128 tasks need far fewer.\n",
        "            # (no task should hold one across a slow call), so 128 tasks need far fewer.\n",
    ),
    Edit(
        "deploy/kubernetes/base/networkpolicy.yaml",
        "# and webhooks go to the receivers' URLs on the internet.",
        "# and outgoing HTTP calls go to the internet.",
    ),
    Edit(
        "docker-compose.yml",
        "`make compose-smoke` brings it up from scratch, delivers one webhook and\n# tears it down again.",
        "`make compose-smoke` brings it up from scratch, runs a request and a task,\n# and tears it down again.",
    ),
    Edit(
        "docker-compose.yml",
        "# Celery's warm shutdown lets running deliveries finish;",
        "# Celery's warm shutdown lets running tasks finish;",
    ),
    block(
        "docker-compose.yml",
        "  # Webhook receiver of `make compose-smoke` only",
        "      - no-new-privileges:true\n\nvolumes:",
        "volumes:\n",
    ),
    Edit(
        "docker-compose.yml",
        "#   RECEIVER_PORT  host port of the smoke test's receiver        default 9000 (127.0.0.1 only)\n",
        "",
    ),
    Edit(
        "make/docker.mk",
        "#   compose-smoke   build, start the whole stack, deliver one signed webhook, tear it all down",
        "#   compose-smoke   build, start the whole stack, run a request and a task, tear it all down",
    ),
    Edit(
        "make/docker.mk",
        "## Build and start the stack in Docker, deliver one signed webhook, tear down",
        "## Build and start the stack in Docker, run a request and a task, tear down",
    ),
    Edit(
        ".github/workflows/ci.yml",
        "# The image and the compose file for real: build, start the stack, deliver one signed webhook,",
        "# The image and the compose file for real: build, start the stack, run a request and a task,",
    ),
    # Bruno: the collection keeps health, auth and the generic errors.
    Edit(
        "bruno/auth/me.bru",
        "  res.body.scopes: contains webhooks:write\n  res.body.scopes: contains messages:write\n",
        "  res.body.scopes: isArray\n",
    ),
    block(
        "bruno/collection.bru",
        "  Ids created on the way (webhook, message)",
        "  Either way the assertions hold.",
        "  Each domain's requests go in a folder of their own (`make domain` does not write them).\n",
    ),
    Edit("bruno/environments/local.bru", "  webhookUrl: http://127.0.0.1:9/bruno-hook\n", ""),
    Edit("bruno/errors/method-not-allowed.bru", "url: {{baseUrl}}/api/v1/webhooks", "url: {{baseUrl}}/api/v1/me"),
    # The benchmarks measure the example's endpoints and its worker: they go with it.
    Edit(
        "Makefile",
        "openapi domain api-check api-fuzz bench services-check",
        "openapi domain api-check api-fuzz services-check",
    ),
    block("Makefile", "bench: services-check ##", "\t$(PY) -m bench.worker"),
    Edit("Makefile", "\n\n\ntoken:", "\n\ntoken:"),
    Edit("pyproject.toml", '"bench/**" = ["T201"]\n', ""),
    Edit("pyproject.toml", 'files = ["app", "tests", "scripts", "bench"]', 'files = ["app", "tests", "scripts"]'),
    Edit(".dockerignore", "docs/, bench/, scripts/", "docs/, scripts/"),
]


def drop_section(root: Path, path: str, heading: str) -> None:
    """Remove a Markdown section: its heading line up to the next heading of the same level."""
    file = root / path
    text = file.read_text(encoding="utf-8")
    level = heading.split(" ", 1)[0] + " "
    start = text.find(f"\n{heading}\n")
    if start < 0:
        raise AnchorError(f"{path}: no section {heading!r}")
    end = text.find(f"\n{level}", start + len(heading) + 2)
    file.write_text(text[: start + 1] + (text[end + 1 :] if end >= 0 else ""), encoding="utf-8")


def template_only(root: Path) -> None:
    """What only the template repository needs: how to use it as a template, its tests and their CI step."""
    drop_section(root, "README.md", "## Start a new service")
    drop_section(root, "docs/decisions.md", "## The template: copier copy and copier update")
    for edit in TEMPLATE_ONLY_EDITS:
        apply_edit(root, edit)


TEMPLATE_ONLY_EDITS = [
    Edit(
        "README.md",
        "copier.yml           the Copier template: its questions;",
        "",
        through="copier.yml           the Copier template: its questions;",
    ),
    Edit(
        ".github/workflows/ci.yml",
        "      # The Copier template: both renderings' own lint and tests, and copier update (tests/template).\n"
        "      - run: make test-template\n",
        "",
    ),
    Edit(
        ".ci/run",
        "make lint, the Copier template's own tests\n"
        "# (make test-template), and the static checks of the Docker files and of the Kubernetes manifests\n"
        "# (no engine,",
        "make lint, and the static checks of the Docker\n# files and of the Kubernetes manifests (no engine,",
    ),
    Edit("README.md", "| `make test-template` |", "", through="| `make test-template` |"),
    Edit(
        "pyproject.toml",
        'extend-exclude = ["bruno", "node_modules", "scripts/template/slim"]',
        'extend-exclude = ["bruno", "node_modules"]',
    ),
    Edit("pyproject.toml", 'exclude = ["^scripts/template/slim/"]\n', ""),
    Edit(".ci/run", "make test-template\n", ""),
    Edit(
        "pyproject.toml",
        "addopts = \"-ra --strict-markers -m 'not template'\"",
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
