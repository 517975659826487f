"""The book's table of contents lists exactly the plan's pages and the hand-written chapters, so a
new page cannot be left out of the site (nor a removed one linger in it)."""

from __future__ import annotations

from typing import Any

import yaml

from mrseg.paths import REPO_ROOT
from mrseg.pipeline.plan import load_plan

BOOK = REPO_ROOT / "book"


def _toc_entries(node: Any) -> list[str]:
    """Every ``root`` / ``file`` entry of a jupyter-book ``_toc.yml``, in order (globs left out)."""
    if isinstance(node, list):
        return [entry for child in node for entry in _toc_entries(child)]
    if not isinstance(node, dict):
        return []
    own = [str(node[key]) for key in ("root", "file") if key in node]
    return own + [entry for key in ("parts", "chapters", "sections") for entry in _toc_entries(node.get(key))]


def test_toc_lists_every_plan_page_and_hand_written_chapter_once():
    entries = _toc_entries(yaml.safe_load((BOOK / "_toc.yml").read_text()))
    pages = {f"generated/pages/{item.template.stem}"
             for item in load_plan("thesis", "demo") if item.kind == "page"}
    chapters = {path.stem for path in BOOK.glob("*.md")}
    assert pages, "the thesis plan has no pages"
    assert len(entries) == len(set(entries)), f"listed twice: {sorted({e for e in entries if entries.count(e) > 1})}"
    assert sorted(pages - set(entries)) == [], "pages missing from _toc.yml"
    assert sorted(chapters - set(entries)) == [], "book/*.md chapters missing from _toc.yml"
    assert sorted(set(entries) - pages - chapters) == [], "_toc.yml lists files that are neither a page nor a chapter"


def test_book_toc_is_the_top_level_toc():
    """``book/_toc.yml`` is a link to the top-level ``_toc.yml``: one file to edit, not two that drift."""
    assert (BOOK / "_toc.yml").resolve() == (REPO_ROOT / "_toc.yml").resolve()
