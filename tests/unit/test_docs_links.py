"""The README and docs/ stand on their own: every relative link opens a file of the repository (and
a heading there, when it names one), and nothing points outside the checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorapilot.controlpilot.docs import heading_id

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)


def _prose(text: str) -> str:
    """The text without code blocks and code spans, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _without_code_blocks(text))


def links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def anchors(page: Path) -> set[str]:
    """The ids of the headings of `page`, as GitHub and ControlPilot's /docs/ give them."""
    headings = re.findall(r"^#{1,6} (.+)$", _without_code_blocks(page.read_text(encoding="utf-8")), re.M)
    return {heading_id(heading) for heading in headings}


def test_there_are_pages_and_links_to_check():
    assert {p.name for p in PAGES} >= {
        "README.md",
        "user-guide.md",
        "architecture.md",
        "lora-formats.md",
        "operations.md",
        "troubleshooting.md",
        "config-reference.md",
        "dialect-options.md",
        "adding-a-family.md",
    }
    readme_targets = {link.partition("#")[0] for link in links(REPO / "README.md")}
    assert {f"docs/{p.name}" for p in PAGES if p.parent.name == "docs"} <= readme_targets


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_opens_a_file_of_the_repository(page: Path):
    broken = []
    for link in links(page):
        if re.match(r"[a-z]+:", link):  # http(s), mailto: not ours to check
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if REPO not in target.parents or not target.is_file():
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_refers_to_files_outside_the_repository(page: Path):
    """Not in links, nor in code spans: a clone has only the repository (no team notes beside it)."""
    for mention in re.findall(r"(?:\.\./)+[\w./-]*", page.read_text(encoding="utf-8")):
        target = (page.parent / mention).resolve()
        assert target == REPO or REPO in target.parents, (
            f"{page.name} refers to {mention}, outside the repository"
        )
