"""The Models tab in headless Chromium on the supervised appliance: the tiny SD1.5 model listed under
SD1.5, a path registered from the page, the ss_* metadata of a LoRA trained by the real engine, and a
hub download with a token that fails cleanly (the hub is offline in tests) without the token ever
reaching the page, the progress files or ControlPilot's log, and the ComfyUI settings. Screenshots go to
test-artifacts/controlpilot/."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from lorapilot.testing.browser import log_in
from lorapilot.testing.tiny_models import single_file_path

TOKEN = "hf_browserTestSecretToken0987654321"
LORA = "/workspace/models/loras/models-page.safetensors"
REGISTERED = "/workspace/imports/registered-sd15.safetensors"
BASE_CHECKPOINT = "tiny-sd15.safetensors"  # the stack's sd15 base (conftest.py)


def _trained_lora(tmp_path: Path, tiny_sd15: Path) -> Path:
    from lorapilot.testing.trained_runs import train_tiny  # noqa: PLC0415

    run = train_tiny(tmp_path / "train", tiny_sd15, "models_page", seed=5)
    return run / "models_page.safetensors"


def test_models_page_lists_models_by_family_registers_a_path_and_shows_lora_metadata(
    page, stack, tiny_models, tmp_path
):
    from playwright.sync_api import expect  # noqa: PLC0415

    ws = stack.workspace
    shutil.copyfile(_trained_lora(tmp_path, tiny_models["sd15"]), ws.resolve(LORA))
    (ws.root / "imports").mkdir(exist_ok=True)
    shutil.copyfile(single_file_path(tiny_models["sd15"]), ws.resolve(REGISTERED))
    url = stack.url("controlpilot")

    log_in(page, url, stack.password, "/models")
    sd15 = page.locator('.family-group[data-family="sd15"]')
    expect(sd15.locator("h3")).to_contain_text("SD1.5")
    expect(sd15.locator('tr[data-path="/workspace/models/diffusers/tiny-sd15"]')).to_contain_text("diffusers")
    broken = page.locator(
        '.family-group[data-family="unknown"] tr[data-path$="checkpoints/tiny-sd15.safetensors"]'
    )
    expect(broken).to_contain_text(
        "unreadable"
    )  # the stack's placeholder checkpoint is not a safetensors file
    expect(page.locator('#disk .disk-row[data-kind="filesystem"]')).to_contain_text("free")
    page.shot("models-01-inventory")

    page.fill("#register-path", REGISTERED)
    page.click("#register-button")
    expect(page.locator("#status")).to_have_text(f"Registered {REGISTERED}.")
    registered = sd15.locator(f'tr[data-path="{REGISTERED}"]')
    expect(registered).to_contain_text("registered")
    expect(registered.locator("button.unregister")).to_be_visible()

    page.locator(f'#lora-table tr[data-path="{LORA}"]').click()
    expect(page.locator("#lora-detail-title")).to_have_text("models-page.safetensors")
    metadata = page.locator("#lora-metadata")
    expect(metadata.locator('tr[data-key="ss_output_name"]')).to_contain_text("models_page")
    expect(metadata.locator('tr[data-key="ss_base_model_version"]')).to_contain_text("sd_v1")
    expect(metadata.locator('tr[data-key="ss_network_dim"]')).to_contain_text("4")
    expect(metadata.locator('tr[data-key="ss_tag_frequency"] pre')).to_contain_text('"lpdemo"')
    page.shot("models-02-lora-metadata")

    page.fill("#download-repo", "stabilityai/sdxl-turbo")
    page.fill("#download-token", TOKEN)
    page.click("#download-button")
    expect(page.locator("#download-token")).to_have_value("")
    failed = page.locator("#downloads-table tbody tr", has_text="stabilityai/sdxl-turbo")
    expect(failed.locator(".state-failed")).to_have_text("failed")
    expect(failed).to_contain_text("HF_HUB_OFFLINE is set")
    page.shot("models-03-download-offline")
    assert page.errors == []

    api = stack.client()
    loras = {lora["path"]: lora for lora in api.ok("GET", "/api/loras")["loras"]}
    assert loras[LORA]["metadata"]["ss_steps"] == "3" and loras[LORA]["error"] is None
    assert REGISTERED in (ws.config / "models.yaml").read_text()
    kept = [ws.logs / "controlpilot.log", *(ws.tmp / "downloads").glob("*.json")]
    assert len(kept) > 1
    for path in kept:
        assert TOKEN not in path.read_text(errors="replace"), path
    assert TOKEN not in page.content()


def test_models_page_comfyui_section_shows_the_stacks_base_and_saves_strengths(page, stack, comfyui):
    """The stack's URL comes from LORAPILOT_COMFY_URL (read-only on the page), its sd15 base from
    config/comfy.yaml; a changed strengths value reaches the file. The file is put back afterwards:
    the other tests of this stack render with its strengths."""
    from playwright.sync_api import expect  # noqa: PLC0415

    config = stack.workspace.config / "comfy.yaml"
    original = config.read_text(encoding="utf-8")
    try:
        log_in(page, stack.url("controlpilot"), stack.password, "/models")
        sd15 = page.locator(
            '#comfy-settings-bases input.comfy-base[data-family="sd15"][data-key="ckpt_name"]'
        )
        expect(sd15).to_have_value(BASE_CHECKPOINT)
        expect(
            page.locator(f'#comfy-choices-sd15-ckpt_name option[value="{BASE_CHECKPOINT}"]')
        ).to_have_count(1)
        expect(page.locator("#comfy-settings-reach")).to_have_attribute("data-state", "up")
        expect(page.locator("#comfy-settings-url")).to_have_value(comfyui.url)
        expect(page.locator("#comfy-settings-url")).not_to_be_editable()
        expect(page.locator("#comfy-settings-url-note")).to_contain_text("LORAPILOT_COMFY_URL")
        expect(page.locator("#comfy-settings-strengths")).to_have_value("0, 0.5, 1")
        page.shot("models-04-comfyui-settings")

        page.fill("#comfy-settings-strengths", "0, 0.25, 1")
        page.click("#comfy-settings-save")
        expect(page.locator("#comfy-settings-message")).to_contain_text(
            "Saved to /workspace/config/comfy.yaml"
        )
        saved = yaml.safe_load(config.read_text(encoding="utf-8"))
        assert saved["strengths"] == [0, 0.25, 1]
        assert saved["bases"] == {"sd15": {"ckpt_name": BASE_CHECKPOINT}}
        assert "url" not in saved  # the environment's URL is not copied into the file
        assert page.errors == []
    finally:
        config.write_text(original, encoding="utf-8")
