"""The start form's base model: a model in the workspace (pulled from the catalog, downloaded or
registered) is offered with its family, and choosing it trains on it instead of the profile's."""

from __future__ import annotations

import shutil

from lorapilot.testing.browser import log_in


def test_a_model_in_the_workspace_is_offered_and_chosen_in_the_start_form(page, stack, tiny_models):
    from playwright.sync_api import expect  # noqa: PLC0415

    target = stack.workspace.model_dir("diffusers") / "picked-sdxl"
    shutil.copytree(tiny_models["sdxl"], target)
    try:
        log_in(page, stack.url("controlpilot"), stack.password, "/")
        choice = page.locator("#start-model option", has_text="picked-sdxl")
        expect(choice).to_have_count(1)
        expect(choice).to_contain_text("SDXL")
        page.fill("#start-dataset", "demo")
        page.select_option("#start-profile", "quick_test")
        page.fill("#start-name", "picked")
        page.select_option("#start-model", "/workspace/models/diffusers/picked-sdxl")
        page.click("#validate-button")
        expect(page.locator("#validation")).to_contain_text("valid: picked, sdxl")
        expect(page.locator("#validation")).to_contain_text("models/diffusers/picked-sdxl")
        page.shot("start-form-base-model")
        page.select_option("#start-model", "")
        page.click("#validate-button")
        expect(page.locator("#validation")).not_to_contain_text("picked-sdxl")  # the profile's model again
    finally:
        shutil.rmtree(target)
