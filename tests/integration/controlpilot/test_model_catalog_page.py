"""The Models tab's catalog in headless Chromium on the supervised appliance: the shipped entries with
their folders and sizes, and a Pull of a gated entry without a token refused with what to do (the
pull itself, from a local file server, is tested through the API and the CLI)."""

from __future__ import annotations

from lorapilot.testing.browser import log_in


def test_models_page_lists_the_catalog_and_says_what_a_gated_pull_needs(page, stack):
    from playwright.sync_api import expect  # noqa: PLC0415

    log_in(page, stack.url("controlpilot"), stack.password, "/models")
    flux = page.locator('#catalog-table tr[data-entry="flux-dev"]')
    expect(flux).to_contain_text("/workspace/models/diffusion_models/flux1-dev.safetensors")
    expect(flux).to_contain_text("flux-1-dev-non-commercial-license (gated: token needed)")
    expect(page.locator('#catalog-table tr[data-entry="sdxl"]')).to_contain_text("checkpoints/sd_xl_base_1.0")
    expect(page.locator("#catalog-user-file")).to_have_text("/workspace/config/models.yaml")
    page.shot("models-catalog-01")

    if (stack.workspace.config / "hf-token").exists():  # the stack has no token; say so if that changes
        raise AssertionError("the test stack has a hub token; this test expects none")
    flux.locator("button.catalog-pull").click()
    expect(page.locator("#status")).to_contain_text("a gated repo: accept its licence")
    started = page.locator("#downloads-table tbody tr", has_text="diffusion_models/flux1-dev.safetensors")
    expect(started).to_have_count(0)
