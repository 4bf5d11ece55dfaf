"""docs/openapi.json is the API's committed contract: this fails when the app's schema drifts from it."""

import difflib

import pytest

from scripts.export_openapi import ROOT, SNAPSHOT, openapi_document, render

MAX_DIFF_LINES = 80


def test_committed_openapi_document_matches_the_app() -> None:
    current = render(openapi_document())
    relative = SNAPSHOT.relative_to(ROOT)
    if not SNAPSHOT.exists():
        pytest.fail(f"{relative} is missing: run `make openapi` and commit it.")
    committed = SNAPSHOT.read_text(encoding="utf-8")
    if committed != current:
        diff = list(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"{relative} (committed)",
                tofile="the app's schema",
                n=2,
            )
        )
        shown = "".join(diff[:MAX_DIFF_LINES]) + ("...\n" if len(diff) > MAX_DIFF_LINES else "")
        pytest.fail(
            f"The API changed but {relative} did not: run `make openapi` and commit the result.\n\n{shown}",
            pytrace=False,
        )
