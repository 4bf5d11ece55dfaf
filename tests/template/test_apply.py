"""scripts/template/apply.py on its own, without Copier (fast: part of `make test`, not only of
`make test-template`): every anchor of both renderings is where the script expects it, and an anchor
that moved stops the script with the file and the anchor."""

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.template.project import EXAMPLE_WORDS, NOT_SEARCHED, ROOT, leftovers, names_pattern, run

APPLY = ROOT / "scripts" / "template" / "apply.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("template_apply", APPLY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


apply = _load()


def _working_tree(destination: Path) -> Path:
    """What Copier copies: the working tree without the template's own machinery (copier.yml `_exclude`)."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT)
    excluded = ("copier.yml", "scripts/template/", "tests/template/", "make/template.mk", "{{")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink() and not name.startswith(excluded):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.mark.parametrize("example", ["yes", "no"])
def test_every_anchor_is_found_and_nothing_of_the_template_is_left(tmp_path: Path, example: str) -> None:
    project = _working_tree(tmp_path / "project")

    answers = ["--name=Acme Billing", "--slug=acme-billing", "--description=Bills.", f"--example={example}"]
    status = apply.main([*answers, f"--root={project}"])

    assert status == 0
    assert leftovers(project, names_pattern()) == []
    assert 'APP_NAME: str = "acme-billing"' in (project / "app/core/config.py").read_text()
    assert (project / "app/api/webhook").exists() is (example == "yes")
    if example == "no":
        assert leftovers(project, EXAMPLE_WORDS, skip=NOT_SEARCHED) == []


def test_a_missing_anchor_stops_with_the_file_and_the_anchor(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text('NAME = "other"\n')

    with pytest.raises(SystemExit, match=r"settings\.py: anchor found 0 times, expected 1: 'NAME = \"app\"'"):
        apply.apply_edit(tmp_path, apply.Edit("settings.py", 'NAME = "app"', 'NAME = "x"'))


def test_an_anchor_found_more_often_than_expected_stops_too(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("app app\n")

    with pytest.raises(SystemExit, match="found 2 times, expected 1"):
        apply.apply_edit(tmp_path, apply.Edit("a.txt", "app", "x"))
    assert (tmp_path / "a.txt").read_text() == "app app\n"


def test_a_missing_definition_or_section_stops(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("def test_one() -> None:\n    pass\n")
    (tmp_path / "README.md").write_text("# Title\n\n## Kept\n\ntext\n")

    with pytest.raises(SystemExit, match="no top-level test_two"):
        apply.drop_definitions(tmp_path, "test_a.py", "test_one", "test_two")
    with pytest.raises(SystemExit, match="no section '## Gone'"):
        apply.drop_section(tmp_path, "README.md", "## Gone")
    assert "test_one" in (tmp_path / "test_a.py").read_text()


def test_the_slim_settings_default_what_they_share_as_the_projects_do() -> None:
    # The slim rendering replaces app/core/config.py with a whole copy of its own, which can fall behind a
    # changed default (a CELERY_CONCURRENCY left at 64 once): caught here, not only by the slim suite.
    from app.core.config import Settings

    spec = importlib.util.spec_from_file_location("slim_config", ROOT / "scripts/template/slim/app/core/config.py")
    assert spec is not None
    assert spec.loader is not None
    slim = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(slim)
    ours, theirs = Settings.model_fields, slim.Settings.model_fields
    shared = sorted(set(ours) & set(theirs))
    assert len(shared) > 40  # the slim settings are the project's, less the example's
    defaults = {
        name: (ours[name].get_default(call_default_factory=True), theirs[name].get_default(call_default_factory=True))
        for name in shared
    }
    assert {name: pair for name, pair in defaults.items() if pair[0] != pair[1]} == {}
