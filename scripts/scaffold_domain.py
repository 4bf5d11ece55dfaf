"""Scaffold a domain: every layer the webhook example has, a migration, registrations and passing tests.

    make domain name=invoice [table=invoices]
    python -m scripts.scaffold_domain --name invoice [--table invoices]

Creates app/api/<name>/ (schemas, router, service), app/db/<name>/ (SQLModel class, repository),
db/migrations/<UTC timestamp>_create_<table>.sql and tests/api/<name>/; then registers the router in
app/api/router.py, the model in app/db/models.py and the scopes `<table>:read` / `<table>:write` in
app/core/security.py, and refreshes docs/openapi.json. A registration that is already there is left
alone, never duplicated. Nothing is written unless every check passes. Templates: scripts/domain_templates/.

Scopes: like the webhook routes, the generated ones require `<table>:read` / `<table>:write` (with
hyphens for underscores, as in the URL: `line-items:read`). They are appended to SCOPES, which
`make token` and the tests' tokens grant; a real identity provider must grant them as well.
"""

import argparse
import ast
import keyword
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION = "Scaffold a domain: router, service, schemas, table, migration, registrations and tests."
TEMPLATES = Path(__file__).resolve().parent / "domain_templates"

# snake_case without empty words: `line_item`, not `line__item` or `item_`.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
# "<table>_client_page_idx" must fit in PostgreSQL's 63-byte identifiers.
MAX_TABLE_LENGTH = 63 - len("_client_page_idx")
# Names the generated code itself uses for other things (the service's `client_id` parameter, `self`).
RESERVED_NAMES = frozenset({"client", "client_id", "self", "cls"})
# Table names the generated service would shadow with its `self.<table>` repository attribute.
RESERVED_TABLES = frozenset({"session", "create", "list", "get", "update", "delete"})
# PostgreSQL's reserved key words: unusable as unquoted table names.
_SQL_RESERVED_WORDS = """
    all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate
    collation column concurrently constraint create cross current_catalog current_date current_role
    current_schema current_time current_timestamp current_user default deferrable desc distinct do else
    end except false fetch for foreign freeze from full grant group having ilike in initially inner
    intersect into is isnull join lateral leading left like limit localtime localtimestamp natural not
    notnull null offset on only or order outer overlaps placing primary references returning right select
    session_user similar some symmetric system_user table tablesample then to trailing true union unique
    user using variadic verbose when where window with
"""
SQL_RESERVED = frozenset(_SQL_RESERVED_WORDS.split())
IRREGULAR_PLURALS = {
    "child": "children",
    "foot": "feet",
    "goose": "geese",
    "man": "men",
    "mouse": "mice",
    "person": "people",
    "tooth": "teeth",
    "woman": "women",
}

SCOPES_MODULE = Path("app/core/security.py")
ROUTERS_MODULE = Path("app/api/router.py")
MODELS_MODULE = Path("app/db/models.py")
MIGRATIONS_DIR = Path("db/migrations")
OPENAPI_SNAPSHOT = Path("docs/openapi.json")


class ScaffoldError(Exception):
    """The domain cannot be scaffolded as asked; the message says why and what to do."""


def pluralize(word: str) -> str:
    """English plural of a snake_case noun's last word: invoice -> invoices, line_item -> line_items."""
    head, _, last = word.rpartition("_")
    prefix = f"{head}_" if head else ""
    if last in IRREGULAR_PLURALS:
        return prefix + IRREGULAR_PLURALS[last]
    if re.search(r"[^aeiou]y$", last):
        return prefix + last[:-1] + "ies"
    if re.search(r"(?:s|x|z|ch|sh)$", last):
        return prefix + last + "es"
    return prefix + last + "s"


def _pascal(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _check_identifier(kind: str, value: str) -> None:
    if not NAME_PATTERN.fullmatch(value):
        raise ScaffoldError(
            f"{kind} {value!r} is not snake_case: lowercase letters, digits and single underscores, "
            "starting with a letter (e.g. invoice, line_item)."
        )
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        raise ScaffoldError(f"{kind} {value!r} is a Python keyword; choose another.")


@dataclass(frozen=True)
class Domain:
    """A domain's name and every identifier derived from it."""

    name: str
    table: str

    @classmethod
    def create(cls, name: str, table: str | None = None) -> "Domain":
        _check_identifier("Domain name", name)
        if name in RESERVED_NAMES:
            raise ScaffoldError(f"Domain name {name!r} clashes with names the generated code uses; choose another.")
        if table is None:
            if name.endswith("s") and not re.search(r"(?:ss|us|is)$", name):
                raise ScaffoldError(
                    f"Domain names are singular ({name[:-1]!r}, not {name!r}). If {name!r} really is singular, "
                    f"name its table too: make domain name={name} table=... (or --table)."
                )
            table = pluralize(name)
        _check_identifier("Table name", table)
        if table in SQL_RESERVED:
            raise ScaffoldError(f"Table name {table!r} is a PostgreSQL reserved word; choose another (table=...).")
        if table in RESERVED_TABLES:
            raise ScaffoldError(f"Table name {table!r} clashes with a method of the generated service; choose another.")
        if len(table) > MAX_TABLE_LENGTH:
            raise ScaffoldError(f"Table name {table!r} is longer than {MAX_TABLE_LENGTH} characters.")
        return cls(name, table)

    @property
    def resource(self) -> str:
        """URL path segment, OpenAPI tag and scope prefix: `line_items` -> `line-items`."""
        return self.table.replace("_", "-")

    @property
    def model(self) -> str:
        return _pascal(self.name)

    @property
    def scopes(self) -> tuple[str, str]:
        return (f"{self.resource}:read", f"{self.resource}:write")

    def substitutions(self) -> dict[str, str]:
        label = self.name.replace("_", " ")
        labels = self.table.replace("_", " ")
        return {
            "name": self.name,
            "table": self.table,
            "resource": self.resource,
            "Model": self.model,
            "Table": f"{_pascal(self.table)}Table",
            "Service": f"{self.model}Service",
            "scope_read": self.scopes[0],
            "scope_write": self.scopes[1],
            "label": label,
            "a_label": f"{'an' if label[0] in 'aeiou' else 'a'} {label}",
            "labels": labels,
            "Label": label.capitalize(),
            "Labels": labels.capitalize(),
        }


@dataclass
class Plan:
    """What a run writes: new files and the new text of changed ones, all relative to the root."""

    created: dict[Path, str] = field(default_factory=dict)
    changed: dict[Path, str] = field(default_factory=dict)
    migration: Path | None = None


# ---- edits of existing modules ----------------------------------------------------------------

Edit = tuple[int, int, int, int, str]  # (line, column, end line, end column, replacement); 1-based lines


def _apply(source: str, edits: Iterable[Edit]) -> str:
    """Replace source ranges given in ast coordinates (columns are UTF-8 byte offsets)."""
    data = source.encode()
    starts = [0]
    for raw_line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(raw_line))
    for line, col, end_line, end_col, text in sorted(edits, reverse=True):
        start, end = starts[line - 1] + col, starts[end_line - 1] + end_col
        data = data[:start] + text.encode() + data[end:]
    return data.decode()


def _insert_after(node: ast.stmt | None, text: str) -> Edit:
    line = (node.end_lineno or node.lineno) + 1 if node is not None else 1
    return (line, 0, line, 0, text)


def _with_final_newline(source: str) -> str:
    return source if source.endswith("\n") or not source else source + "\n"


def _assignment(tree: ast.Module, name: str) -> ast.Assign | ast.AnnAssign | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
    return None


def _last_import(tree: ast.Module) -> ast.stmt | None:
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return imports[-1] if imports else None


def _string_items(node: ast.expr | None) -> list[str] | None:
    if not isinstance(node, ast.Tuple | ast.List):
        return None
    items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return items if len(items) == len(node.elts) else None


def _replace(node: ast.expr, text: str) -> Edit:
    assert node.end_lineno is not None
    assert node.end_col_offset is not None
    return (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text)


def _quoted(items: Iterable[str]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def register_router(source: str, name: str) -> str:
    """app/api/router.py: import the domain's router and list it in DOMAIN_ROUTERS, unless already done."""
    source = _with_final_newline(source)
    tree = ast.parse(source)
    module = f"app.api.{name}.points"
    alias = f"{name}_router"
    edits: list[Edit] = []
    imported = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == module]
    if imported:
        alias = next((a.asname or a.name for a in imported[0].names if a.name == "router"), alias)
    else:
        edits.append(_insert_after(_last_import(tree), f"from {module} import router as {alias}\n"))
    assignment = _assignment(tree, "DOMAIN_ROUTERS")
    current = _name_items(assignment.value if assignment else None)
    if assignment is None or assignment.value is None or current is None:
        raise ScaffoldError(f"{ROUTERS_MODULE} has no DOMAIN_ROUTERS tuple: include {module}'s router by hand.")
    if alias not in current:
        edits.append(_replace(assignment.value, f"({', '.join([*current, alias])})"))
    return _apply(source, edits)


def _name_items(node: ast.expr | None) -> list[str] | None:
    """The names of a literal tuple of names, else None."""
    if not isinstance(node, ast.Tuple) or not all(isinstance(item, ast.Name) for item in node.elts):
        return None
    return [item.id for item in node.elts if isinstance(item, ast.Name)]


def register_model(source: str, name: str, model: str) -> str:
    """app/db/models.py: import the table class and list it in __all__, unless already done."""
    source = _with_final_newline(source)
    tree = ast.parse(source)
    module = f"app.db.{name}.model"
    edits: list[Edit] = []
    imported = any(
        isinstance(n, ast.ImportFrom) and n.module == module and any(a.name == model for a in n.names)
        for n in tree.body
    )
    if not imported:
        edits.append(_insert_after(_last_import(tree), f"from {module} import {model}\n"))
    exported = _assignment(tree, "__all__")
    names = _string_items(exported.value if exported else None)
    if exported is None or exported.value is None or names is None:
        raise ScaffoldError(f"{MODELS_MODULE} has no literal __all__ list: add {model} to it by hand.")
    if model not in names:
        edits.append(_replace(exported.value, f"[{_quoted(sorted([*names, model]))}]"))
    return _apply(source, edits)


def add_scopes(source: str, scopes: Iterable[str]) -> str:
    """app/core/security.py: append the domain's scopes to the SCOPES tuple, unless already there."""
    tree = ast.parse(source)
    assignment = _assignment(tree, "SCOPES")
    current = _string_items(assignment.value if assignment else None)
    if assignment is None or assignment.value is None or current is None:
        raise ScaffoldError(
            f"{SCOPES_MODULE} has no literal SCOPES tuple, so development tokens would lack the new scopes: "
            "add them where your tokens get their scopes."
        )
    missing = [scope for scope in scopes if scope not in current]
    if not missing:
        return source
    return _apply(source, [_replace(assignment.value, f"({_quoted([*current, *missing])})")])


# ---- planning and writing ---------------------------------------------------------------------


def _render(template: str, domain: Domain) -> str:
    return Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(domain.substitutions())


def _existing(root: Path, *candidates: str) -> list[str]:
    return [c for c in candidates if (root / c).exists() or (root / f"{c}.py").exists()]


def _migration_version(root: Path, now: datetime) -> str:
    versions = [p.name.split("_", 1)[0] for p in (root / MIGRATIONS_DIR).glob("*.sql")]
    newest = max((v for v in versions if v.isdigit() and len(v) == 14), default=None)
    stamp = now.astimezone(UTC).replace(microsecond=0, tzinfo=None)
    if newest is not None:
        # Never sort before a migration that already exists, even with a skewed clock.
        stamp = max(stamp, datetime.strptime(newest, "%Y%m%d%H%M%S") + timedelta(seconds=1))  # noqa: DTZ007
    return stamp.strftime("%Y%m%d%H%M%S")


def _check_existing_table(root: Path, table: str) -> None:
    pattern = re.compile(rf"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:public\.)?{table}\b", re.IGNORECASE)
    for path in sorted((root / MIGRATIONS_DIR).glob("*.sql")):
        if pattern.search(path.read_text(encoding="utf-8")):
            raise ScaffoldError(f"Table {table!r} already exists ({MIGRATIONS_DIR / path.name}); choose another.")


def _check_generated(path: Path, source: str) -> None:
    """Refuse names that would generate broken code: a clash between an import and a generated class."""
    try:
        tree = ast.parse(source, str(path))
        compile(source, str(path), "exec")  # also catches what only the compiler sees (duplicate arguments)
    except SyntaxError as exc:
        raise ScaffoldError(f"This name would generate invalid code in {path}: {exc.msg}; choose another.") from None
    bound: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            bound += [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            bound.append(node.name)
    clashes = sorted(n for n, count in Counter(bound).items() if count > 1)
    if clashes:
        raise ScaffoldError(f"This name would bind {', '.join(clashes)} twice in {path}; choose another.")


def plan(domain: Domain, root: Path = ROOT, now: datetime | None = None) -> Plan:
    """Everything a run would write, checked before anything is written."""
    name = domain.name
    taken = _existing(root, f"app/api/{name}", f"app/db/{name}", f"tests/api/{name}")
    if taken:
        raise ScaffoldError(f"{name!r} exists already ({', '.join(taken)}); choose another name.")
    _check_existing_table(root, domain.table)

    result = Plan()
    api, db, tests = Path("app/api", name), Path("app/db", name), Path("tests/api", name)
    files = {
        api / "__init__.py": "",
        api / "models.py": _render("api_models.py.tmpl", domain),
        api / "points.py": _render("api_points.py.tmpl", domain),
        api / "service.py": _render("api_service.py.tmpl", domain),
        db / "__init__.py": "",
        db / "model.py": _render("db_model.py.tmpl", domain),
        db / "table.py": _render("db_table.py.tmpl", domain),
        tests / "__init__.py": "",
        tests / f"test_{name}_api.py": _render("test_api.py.tmpl", domain),
    }
    for path, source in files.items():
        _check_generated(path, source)
    result.created.update(files)
    version = _migration_version(root, now or datetime.now(UTC))
    result.migration = MIGRATIONS_DIR / f"{version}_create_{domain.table}.sql"
    result.created[result.migration] = _render("migration.sql.tmpl", domain)

    edits: dict[Path, Callable[[str], str]] = {
        ROUTERS_MODULE: lambda text: register_router(text, name),
        MODELS_MODULE: lambda text: register_model(text, name, domain.model),
        SCOPES_MODULE: lambda text: add_scopes(text, domain.scopes),
    }
    for path, edit in edits.items():
        if not (root / path).is_file():
            raise ScaffoldError(f"{path} is missing: is {root} the repository root?")
        before = (root / path).read_text(encoding="utf-8")
        after = edit(before)
        if after != before:
            result.changed[path] = after
    return result


def _ruff() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    return str(beside) if beside.is_file() else shutil.which("ruff")


def tidy(paths: list[Path], root: Path) -> None:
    """Sort imports and format the written Python files with the project's ruff settings.

    After writing, not before: ruff tells first-party imports from third-party ones by what exists on disk.
    """
    ruff = _ruff()
    python = [str(path) for path in paths if path.suffix == ".py"]
    if ruff is None:
        print("warning: ruff not found; run `make format` before committing.", file=sys.stderr)
        return
    for command in (["check", "--fix-only", "--select", "I"], ["format"]):
        subprocess.run([ruff, *command, "--quiet", *python], cwd=root, check=True)  # noqa: S603 - the project's ruff


def write(result: Plan, root: Path) -> None:
    for path, source in {**result.created, **result.changed}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(source, encoding="utf-8")
    tidy([*result.created, *result.changed], root)


def export_openapi(root: Path) -> bool:
    """Refresh docs/openapi.json so that the snapshot test passes; False if that failed."""
    completed = subprocess.run(
        [sys.executable, "-m", "scripts.export_openapi"], cwd=root, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        print(completed.stderr, file=sys.stderr)
    return completed.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.scaffold_domain", description=DESCRIPTION)
    parser.add_argument("--name", required=True, help="singular snake_case domain name, e.g. invoice or line_item")
    parser.add_argument("--table", help="plural table name (default: derived from --name, e.g. invoices)")
    parser.add_argument("--no-openapi", action="store_true", help=f"leave {OPENAPI_SNAPSHOT} alone")
    args = parser.parse_args(argv)

    try:
        domain = Domain.create(args.name, args.table or None)
        result = plan(domain)
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write(result, ROOT)

    print(f"Scaffolded the {domain.name!r} domain (table {domain.table}, routes /api/v1/{domain.resource}).")
    print("Created:")
    for path in result.created:
        print(f"  {path}")
    if result.changed:
        print("Updated:")
        for path in result.changed:
            note = f"  (scopes {', '.join(domain.scopes)})" if path == SCOPES_MODULE else ""
            print(f"  {path}{note}")
    if not args.no_openapi and (ROOT / OPENAPI_SNAPSHOT).exists():
        if export_openapi(ROOT):
            print(f"  {OPENAPI_SNAPSHOT}  (regenerated)")
        else:
            print(f"warning: could not regenerate {OPENAPI_SNAPSHOT}; run `make openapi`.", file=sys.stderr)
    print(
        "\nNext steps:\n"
        f"  make migrate   apply {result.migration} and refresh db/schema.sql\n"
        f"  make test      run the suite, tests/api/{domain.name}/ included\n"
        "  Then give the domain its real columns: migration, model, schemas and tests change together."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
