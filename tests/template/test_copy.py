"""`copier copy` of this template, with the example and without: each generated project is renamed through
and through, and passes its own `make lint` and `make test` (on databases of its own)."""

import os
import re
from pathlib import Path

import pytest

from tests.template.project import (
    EXAMPLE_WORDS,
    NOT_SEARCHED,
    Project,
    copy_template,
    leftovers,
    names_pattern,
    template_repository,
)

pytestmark = pytest.mark.template

BASE_DB = os.environ.get("TEST_TEMPLATE_DB") or "app_test"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_repository(tmp_path_factory.mktemp("template"))


@pytest.mark.parametrize("example", [True, False], ids=["with-example", "without-example"])
def test_copy_renames_and_passes_its_own_suite(
    template: Path, tmp_path: Path, shared_venv: Path, example: bool
) -> None:
    project = copy_template(template, tmp_path / "acme-billing", example=example, name="Acme Billing")

    answers = (project / ".copier-answers.yml").read_text()
    assert "project_slug: acme-billing" in answers
    assert f"include_example: {'true' if example else 'false'}" in answers
    assert 'name = "acme-billing"' in (project / "pyproject.toml").read_text()
    assert 'APP_NAME: str = "acme-billing"' in (project / "app/core/config.py").read_text()
    assert 'DB_NAME: str = "acme_billing"' in (project / "app/core/config.py").read_text()
    assert (project / "README.md").read_text().startswith("# Acme Billing\n")
    assert "image: ${APP_IMAGE:-acme-billing:local}" in (project / "docker-compose.yml").read_text()
    assert "app.kubernetes.io/name: acme-billing" in (project / "deploy/kubernetes/base/api.yaml").read_text()
    assert '"name": "acme-billing"' in (project / "bruno/bruno.json").read_text()
    assert not (project / "copier.yml").exists()
    assert not (project / "scripts/template").exists()
    assert not (project / "tests/template").exists()
    assert leftovers(project, names_pattern()) == []
    # The template's machinery is gone (the changelog, its history, may name it).
    assert leftovers(project, re.compile(r"test-template|not template"), skip={"CHANGELOG.md"}) == []
    if example:
        assert (project / "app/api/messaging/points.py").is_file()
    else:
        assert not (project / "app/api/messaging").exists()
        assert not (project / "app/db/webhook").exists()
        assert leftovers(project, EXAMPLE_WORDS, skip=NOT_SEARCHED) == []

    Project(project, database=f"{BASE_DB}_tpl_{'example' if example else 'clean'}", venv=shared_venv).suite()
