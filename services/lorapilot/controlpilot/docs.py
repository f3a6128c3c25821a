"""The documentation inside the appliance: `/docs/` lists the pages of the repository's docs/ and
`/docs/<page>.md` shows one as HTML, so the guide is at hand where there is no internet.

Pages are looked up by name among the files that exist, never by joining the URL into a path, so
nothing but docs/*.md can be served. Raw HTML in the Markdown is shown as text, not rendered.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from flask import Blueprint, Flask, abort, render_template
from markdown_it import MarkdownIt

bp = Blueprint("docs", __name__, template_folder="templates")
DOCS_ENV = "LORAPILOT_DOCS"  # the image sets it; a checkout reads its own docs/
HOME = "user-guide.md"  # the page the index puts first


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def docs_dir() -> Path:
    """`$LORAPILOT_DOCS`, else the checkout's `docs/` beside `services/`."""
    configured = os.environ.get(DOCS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "docs"


def pages() -> dict[str, Path]:
    """Page name → file, for every Markdown file in the docs folder."""
    folder = docs_dir()
    found = sorted(folder.glob("*.md")) if folder.is_dir() else []
    return {path.name: path for path in found if path.is_file()}


def heading_id(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")


def _heading_open(renderer, tokens, index, options, env) -> str:
    """A heading with the id GitHub gives it, so the docs' in-page links work here too."""
    tokens[index].attrSet("id", heading_id(tokens[index + 1].content))
    return renderer.renderToken(tokens, index, options, env)


@cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("heading_open", _heading_open)
    return md


def title_of(text: str, fallback: str) -> str:
    found = re.search(r"^# (.+)$", text, re.M)
    return found.group(1).strip() if found else fallback


@bp.get("/docs/")
def index() -> str:
    available = pages()
    if not available:
        abort(404, description=f"the documentation is not installed here (set {DOCS_ENV} to its folder)")
    order = sorted(available, key=lambda name: (name != HOME, name))
    entries = [(name, title_of(available[name].read_text(encoding="utf-8"), name)) for name in order]
    return render_template("docs.html", title="Documentation", entries=entries, body=None)


@bp.get("/docs/<page>")
def page(page: str) -> str:
    path = pages().get(page)
    if path is None:
        abort(404)
    text = path.read_text(encoding="utf-8")
    body = _markdown().render(text)
    return render_template("docs.html", title=title_of(text, page), entries=None, body=body)
