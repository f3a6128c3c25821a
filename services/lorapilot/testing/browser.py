"""Headless Chromium for the pages' tests: Debian's `chromium` driven by Playwright.

Playwright's own browser download is never used (no network at test time); the page records script
errors in `page.errors`, and `page.shot(step)` keeps a full-page screenshot as a test artifact.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MISSING = "Debian's chromium is not installed (scripts/bootstrap installs it when run as root)"


@contextmanager
def chromium_page(artifacts: Path) -> Iterator:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415  (only the browser tests need it)

    if CHROMIUM is None:
        raise RuntimeError(MISSING)
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            page.shot = lambda step: page.screenshot(path=artifacts / f"{step}.png", full_page=True)
            yield page
        finally:
            browser.close()


def log_in(page, url: str, password: str, path: str = "/") -> None:
    """Open `path`, get sent to the login form, log in with the password and land back on `path`."""
    from playwright.sync_api import expect  # noqa: PLC0415

    page.goto(url + path)
    expect(page.locator("#password")).to_be_visible()
    page.fill("#password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + path)
