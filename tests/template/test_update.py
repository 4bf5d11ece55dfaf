"""`copier update` of a generated project: from a project made at an older template version, with an edit of
its own, updating to the newer version applies the template's change, keeps the user's edit, leaves no
conflict markers, and the updated project still passes its suite.

The two versions are made here, in a temporary git copy of this template: v0.1.0 is the working tree as it
is, v0.2.0 the same plus a small change of the template (a comment and a new file).
"""

import os
from pathlib import Path

import pytest

from tests.template.project import (
    EXAMPLE_WORDS,
    NOT_SEARCHED,
    Project,
    copier,
    copy_template,
    git,
    leftovers,
    names_pattern,
    run,
    template_repository,
)

pytestmark = pytest.mark.template

BASE_DB = os.environ.get("TEST_TEMPLATE_DB") or "app_test"
TIME_MODULE = "app/core/time.py"
TEMPLATE_LINE = "# All times are aware datetimes in UTC (template v0.2.0)."
USER_LINE = "# Billing keeps its invoices in UTC too (our own note)."
README_NOTE = "\n## Our own notes\n\nInvoices are kept for ten years.\n"
PROBE = "docs/template-v0.2.0.md"


def two_versions(template: Path) -> None:
    """Tag the copy as v0.1.0, change it a little, and tag that as v0.2.0."""
    git("tag", "v0.1.0", cwd=template)
    module = template / TIME_MODULE
    module.write_text(f"{TEMPLATE_LINE}\n" + module.read_text())
    (template / PROBE).write_text("A file the template added in v0.2.0.\n")
    git("add", "--all", cwd=template)
    git("commit", "--quiet", "--message=v0.2.0: a comment and a new file", cwd=template)
    git("tag", "v0.2.0", cwd=template)


def test_update_applies_the_template_change_and_keeps_the_users_edits(tmp_path: Path, shared_venv: Path) -> None:
    template = template_repository(tmp_path / "template")
    two_versions(template)
    project = copy_template(template, tmp_path / "billing", example=False, ref="v0.1.0", name="Billing")
    assert TEMPLATE_LINE not in (project / TIME_MODULE).read_text()
    git("init", "--quiet", "--initial-branch=main", cwd=project)
    git("add", "--all", cwd=project)
    git("commit", "--quiet", "--message=Start from the template", cwd=project)

    # The user's edits: one at the end of the file the template changes at its top, one elsewhere.
    with (project / TIME_MODULE).open("a") as module:
        module.write(f"\n\n{USER_LINE}\n")
    with (project / "README.md").open("a") as readme:
        readme.write(README_NOTE)
    git("commit", "--quiet", "--all", "--message=Our edits", cwd=project)

    copier("update", "--trust", "--defaults", "--vcs-ref", "v0.2.0", cwd=project)

    time_module = (project / TIME_MODULE).read_text()
    assert TEMPLATE_LINE in time_module
    assert USER_LINE in time_module
    assert (project / "README.md").read_text().endswith(README_NOTE)
    assert (project / PROBE).is_file()
    answers = (project / ".copier-answers.yml").read_text()
    assert "_commit: v0.2.0" in answers
    assert "include_example: false" in answers
    # Copier changed the work tree only: exactly the template's change and nothing else.
    changed = set(run(["git", "status", "--porcelain", "--untracked-files=all"], project).split("\n")) - {""}
    assert {line[3:] for line in changed} == {TIME_MODULE, PROBE, ".copier-answers.yml"}, changed
    conflicts = run(["git", "grep", "-nE", "^(<<<<<<<|=======$|>>>>>>>)", "--", "."], project, ok_codes=(0, 1))
    assert conflicts == ""
    assert not list(project.rglob("*.rej"))
    # The update ran the task again: still renamed, still without the example.
    assert not (project / "app/api/messaging").exists()
    assert leftovers(project, names_pattern()) == []
    assert leftovers(project, EXAMPLE_WORDS, skip=NOT_SEARCHED) == []

    Project(project, database=f"{BASE_DB}_tpl_update", venv=shared_venv).suite()
