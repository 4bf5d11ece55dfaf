"""The import graph points down: each package imports only its own floor and the floors below it.

Read from the code (every `import` and `from ... import`, also inside functions), so it stays true as the
code changes. The floors, lowest first (README "Layout"):

    core -> db -> clients -> web -> api -> worker -> main

`app.main` and `app.worker.main` are entry points (uvicorn's factory, Celery's CLI): nothing imports them.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[1] / "app"
FLOORS = ("app.core", "app.db", "app.clients", "app.web", "app.api", "app.worker", "app.main")
ENTRY_POINTS = ("app.main", "app.worker.main")


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The project modules `path` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "app" or name.startswith("app.")}


def _floor(module: str) -> int:
    for index, floor in enumerate(FLOORS):
        if module == floor or module.startswith(f"{floor}."):
            return index
    raise AssertionError(f"{module} is on no floor: add its package to FLOORS (and to the README's Layout)")


def _package(module: str) -> str:
    """The package a module belongs to (a package's __init__ belongs to the package itself)."""
    path = APP.parent / Path(*module.split("."))
    return module if path.is_dir() else module.rpartition(".")[0]


MODULES = {_module_name(path): _imports(path) for path in sorted(APP.rglob("*.py"))}
KNOWN = set(MODULES)


def _project_imports(module: str) -> set[str]:
    # `from app.x import name` names a module only if app/x/name.py exists; keep what is a module.
    return {name for name in MODULES[module] if name in KNOWN}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    upward = [name for name in _project_imports(module) if _floor(name) > _floor(module)]
    assert not upward, f"{module} (floor {FLOORS[_floor(module)]}) imports from higher floors: {sorted(upward)}"


def test_nothing_imports_an_entry_point() -> None:
    importers = {module: sorted(set(ENTRY_POINTS) & _project_imports(module)) for module in MODULES}
    assert {module: names for module, names in importers.items() if names} == {}


def _related(a: str, b: str) -> bool:
    """A package and one inside it: a parent's module composing its children (app.api.router) and a child using
    the parent's shared modules (app.api.deps) is how a package is built, not a cycle."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def test_no_import_cycles_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for name in _project_imports(module):
            if not _related(_package(name), _package(module)):
                graph[_package(module)].add(_package(name))

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for successor in graph[node]:
                if successor == start:
                    return [*path, start]
                if successor not in path:
                    stack.append((successor, [*path, successor]))
        return None

    cycles = [cycle for package in sorted(graph) if (cycle := cycle_from(package))]
    assert not cycles, f"packages import each other in a circle: {cycles[0]}"


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an import from a higher floor is found."""
    path = tmp_path / "sample.py"
    path.write_text("import json\nfrom app.api.deps import get_settings\n\ndef f():\n    import app.worker.tasks\n")
    assert _imports(path) == {"app.api.deps", "app.api.deps.get_settings", "app.worker.tasks"}
    assert _floor("app.api.deps") > _floor("app.core.config")
