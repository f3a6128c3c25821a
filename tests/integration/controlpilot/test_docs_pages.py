"""The docs inside the running appliance (issue 19): ControlPilot under supervisord serves docs/ over
real HTTP behind the login, refuses every path outside docs/ whatever the encoding, and its footer's
Docs link opens them in Chromium. Screenshots go to test-artifacts/controlpilot/."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from lorapilot.testing.browser import log_in

DOCS = Path(__file__).resolve().parents[3] / "docs"
GUIDE_TITLE = "User guide: from a folder of images to a LoRA in ComfyUI"


def _raw_get(url: str, target: str, cookie: str = "") -> tuple[int, str]:
    """GET with the request target sent exactly as written (no client-side `..` clean-up)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", target, headers={"Cookie": cookie} if cookie else {})
        reply = connection.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_a_logged_in_get_shows_the_user_guide_and_without_a_session_asks_for_the_login(stack):
    api = stack.client()
    reply = api.call("GET", "/docs/user-guide.md")
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/html")
    assert GUIDE_TITLE in reply.text
    status, body = _raw_get(stack.url("controlpilot"), "/docs/user-guide.md")
    assert status == 302 and GUIDE_TITLE not in body
    anonymous = requests.get(
        stack.url("controlpilot") + "/docs/", headers={"Accept": "application/json"}, timeout=30
    )
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    "target",
    [
        "/docs/../README.md",
        "/docs/%2e%2e/x",
        "/docs/%2e%2e/README.md",
        "/docs/..%2fpyproject.toml",
        "/docs/x.md",
    ],
)
def test_paths_outside_docs_are_not_found(stack, target):
    api = stack.client()
    cookie = "; ".join(f"{c.name}={c.value}" for c in api.http.cookies)
    status, body = _raw_get(stack.url("controlpilot"), target, cookie)
    assert status == 404, (target, status)
    assert "# LoRA Pilot" not in body and "[project]" not in body


def test_the_footer_docs_link_opens_the_documentation(page, stack):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    log_in(page, url, stack.password, "/")
    page.click("footer #docs-link")
    expect(page).to_have_url(url + "/docs/")
    page.click(f"#docs-index a:text-is('{GUIDE_TITLE}')")
    expect(page).to_have_url(url + "/docs/user-guide.md")
    expect(page.locator("main h1").first).to_have_text(GUIDE_TITLE)
    page.shot("docs-01-user-guide")
    page.locator("main a[href='troubleshooting.md']").first.click()
    expect(page).to_have_url(url + "/docs/troubleshooting.md")
    expect(page.locator("main h1").first).to_have_text("Troubleshooting")
    page.click("footer #docs-link")
    expect(page.locator("#docs-index li")).to_have_count(len(list(DOCS.glob("*.md"))))
    assert page.errors == []
