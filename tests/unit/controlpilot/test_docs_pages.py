"""ControlPilot serves the repository's docs/ at /docs/ (issue 19): behind the login, as HTML, every
page's links working inside the appliance, and nothing but docs/*.md reachable by any URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorapilot.controlpilot.docs import DOCS_ENV

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_a_logged_in_user_reads_the_user_guide_as_html(session):
    reply = session.call("GET", "/docs/user-guide.md")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    assert "<h1" in reply.text and "User guide: from a folder of images to a LoRA in ComfyUI" in reply.text
    assert "<table>" in reply.text  # the guide's tables are rendered, not shown as pipes
    assert '<code class="language-yaml">' in reply.text
    assert 'id="4-validate-before-you-spend-gpu-time"' in reply.text  # the guide's own in-page links land
    assert 'href="operations.md"' in reply.text  # sibling pages resolve under /docs/
    assert 'id="docs-link"' in reply.text


def test_the_index_lists_every_page_with_the_user_guide_first(session):
    reply = session.call("GET", "/docs/")
    assert reply.status_code == 200
    names = re.findall(r'href="/docs/([^"]+)"', reply.text)
    assert names[0] == "user-guide.md"
    assert sorted(names) == sorted(p.name for p in DOCS.glob("*.md"))
    assert "Troubleshooting" in reply.text


def test_every_page_renders_and_its_relative_links_stay_in_docs(session):
    for path in sorted(DOCS.glob("*.md")):
        reply = session.call("GET", f"/docs/{path.name}")
        assert reply.status_code == 200, path.name
        for target in re.findall(r'href="([^"#:]+\.md)', reply.text):
            assert (DOCS / target).is_file(), f"{path.name} links to {target}"


def test_raw_html_in_a_page_is_shown_as_text(session, tmp_path, monkeypatch):
    (tmp_path / "evil.md").write_text("# Evil\n\n<script>alert(1)</script>\n[x](javascript:alert(1))\n")
    monkeypatch.setenv(DOCS_ENV, str(tmp_path))
    reply = session.call("GET", "/docs/evil.md")
    assert reply.status_code == 200
    assert "<script>alert" not in reply.text and "&lt;script&gt;" in reply.text
    assert 'href="javascript:' not in reply.text


def test_without_a_session_the_docs_ask_for_the_login(app):
    client = app.test_client()
    page = client.get("/docs/user-guide.md")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login?next=/docs/user-guide.md")
    as_json = client.get("/docs/", headers={"Accept": "application/json"})
    assert as_json.status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "/docs/../README.md",
        "/docs/%2e%2e/README.md",
        "/docs/%2e%2e%2fREADME.md",
        "/docs/..%2fpyproject.toml",
        "/docs/%2Fetc%2Fpasswd",
        "/docs/user-guide",
        "/docs/USER-GUIDE.MD",
        "/docs/.md",
        "/docs/nothing.md",
        "/docs/user-guide.md%00",
    ],
)
def test_only_the_files_of_docs_are_served(session, url):
    reply = session.call("GET", url)
    assert reply.status_code == 404, (url, reply.status_code)
    assert "# LoRA Pilot" not in reply.text and "[project]" not in reply.text


def test_without_docs_the_index_says_where_to_point_it(session, tmp_path, monkeypatch):
    monkeypatch.setenv(DOCS_ENV, str(tmp_path / "absent"))
    reply = session.call("GET", "/docs/")
    assert reply.status_code == 404 and DOCS_ENV in reply.text


def test_the_dashboard_and_the_models_page_link_to_the_docs_in_their_footer(session):
    for url in ("/", "/models"):
        footer = re.search(r"<footer>(.*?)</footer>", session.call("GET", url).text, re.S)
        assert footer and 'href="/docs/"' in footer.group(1) and ">Docs<" in footer.group(1), url
