"""In the browser, on the supervised appliance: the footer says which LoRA Pilot and torch run (the
full list one click away), and on a machine without an NVIDIA driver the Monitor says so."""

from __future__ import annotations

from importlib import metadata

import torch

import lorapilot
from lorapilot.testing.browser import log_in


def test_the_footer_shows_the_versions_and_the_monitor_explains_a_missing_gpu(page, stack):
    from playwright.sync_api import expect  # noqa: PLC0415

    log_in(page, stack.url("controlpilot"), stack.password)
    summary = page.locator("footer #versions summary")
    expect(summary).to_have_text(
        f"LoRA Pilot {lorapilot.__version__} · torch {torch.__version__} "
        f"({f'CUDA {torch.version.cuda}' if torch.version.cuda else 'CPU build'})"
    )
    expect(page.locator("#versions table")).to_be_hidden()
    summary.click()
    diffusers = page.locator("#versions tr", has_text="diffusers")
    expect(diffusers).to_be_visible()
    expect(diffusers.locator("td").first).to_have_text(metadata.version("diffusers"))
    if not torch.cuda.is_available():
        expect(page.locator("#no-gpu")).to_contain_text("No GPU: no NVIDIA GPU or driver (")
        expect(page.locator("#versions tr", has_text="nvidia driver")).to_contain_text("none")
    page.shot("versions-01-footer")
    assert page.errors == []
