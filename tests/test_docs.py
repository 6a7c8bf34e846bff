"""The documentation's examples run, page by page, against servers they start themselves."""

from __future__ import annotations

import pathlib

import pytest
from examples import python_blocks, run_examples

DOCS = pathlib.Path(__file__).parent.parent / "docs"
PAGES = sorted(page for page in DOCS.glob("*.md") if python_blocks(page.read_text()))


def test_the_guide_has_examples():
    assert len(PAGES) >= 8


@pytest.mark.parametrize("page", PAGES, ids=[page.stem for page in PAGES])
def test_page_examples_run(page, no_leaks):
    with no_leaks():
        run_examples(page)


def test_the_changelog_page_includes_changes_md_rather_than_a_copy():
    page = (DOCS / "changelog.md").read_text()
    assert "```{include} ../CHANGES.md" in page
    assert "## 0." not in page
