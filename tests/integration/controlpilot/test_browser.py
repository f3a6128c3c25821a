"""The appliance end to end (issue 8 acceptance 1 and 6, issue 9 acceptance 5): in headless Chromium,
log in, start a quick_test job on the tiny SD1.5 model from the Training form, watch it reach 100 %,
see the loss plot and a sample, download the LoRA — while the same job's progress is followed through
ControlPilot's API — and end with the ComfyUI bridge publishing the LoRA to models/loras/ and
rendering a strength-sweep contact sheet through the fake ComfyUI. Screenshots of each step are kept
in test-artifacts/controlpilot/."""

from __future__ import annotations

import json
import os
import re
import stat

from PIL import Image
from safetensors import safe_open

OVERRIDES = [
    "model.path=/workspace/models/diffusers/tiny-sd15",
    "model.weight_dtype=fp32",
    "training.mixed_precision=no",
    "training.max_steps=6",
    "datasets[0].resolutions=[64]",
    "sample.every=3",
    "sample.prompts=[lpdemo a photo]",
    "sample.steps=2",
    "sample.width=64",
    "sample.height=64",
]


def test_start_a_quick_test_job_watch_it_finish_download_the_lora_and_see_it_in_comfyui(
    page, stack, comfyui, tmp_path
):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    page.goto(url + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.fill("#password", stack.password)
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/")
    expect(page.locator("#cpu")).to_contain_text("CPU")
    expect(page.locator("#no-gpu, .gpu").first).to_be_visible()  # a GPU card, or the no-GPU reason
    expect(page.locator('#services-table tr[data-service="tagpilot"]')).to_contain_text("RUNNING")

    page.fill("#start-dataset", "demo")
    page.select_option("#start-profile", "quick_test")
    page.fill("#start-overrides", "training.learning_rate=-1")
    page.click("#validate-button")
    expect(page.locator("#validation")).to_contain_text("training.learning_rate")
    page.fill("#start-name", "browser")
    page.fill("#start-overrides", "\n".join(OVERRIDES))
    page.click("#validate-button")
    expect(page.locator("#validation")).to_contain_text("valid: browser, sd15, 6 steps")
    page.shot("01-start-form")
    page.click("#start-button")
    expect(page.locator("#validation")).to_contain_text("queued browser")
    row = page.locator("#jobs-table tbody tr", has_text="browser")
    expect(row).to_have_count(1)

    # acceptance 6: follow the job through the API while the page shows it
    api = stack.client()
    job_id = api.ok("GET", "/api/jobs/browser")["id"]
    row.locator("a").click()
    expect(page).to_have_url(f"{url}/jobs/{job_id}")
    seen = []
    for _ in range(1200):
        view = api.ok("GET", f"/api/jobs/{job_id}")
        seen.append(view["progress"])
        if view["state"] in ("done", "failed", "cancelled"):
            break
        if len(seen) == 20:
            page.shot("02-job-running")
        page.wait_for_timeout(200)
    assert view["state"] == "done", view
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert view["status"]["step"] == view["status"]["total"] == 6
    assert view["metrics"]["step"] and len(view["metrics"]["loss"]) == len(view["metrics"]["step"])

    expect(page.locator("#job-progress-text")).to_have_text("6/6 (100%)", timeout=15_000)
    expect(page.locator("#job-title")).to_have_text("browser — done")
    expect(page.locator("#loss-plot svg polyline")).to_have_count(2)  # raw steps and their smoothed curve
    assert int(page.locator("#loss-plot").get_attribute("data-points")) == len(view["metrics"]["step"])
    sample = page.locator("#samples img").first
    expect(sample).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", sample.element_handle()) == 64
    page.shot("03-job-done")

    link = page.locator("#lora-link")
    expect(link).to_be_visible()
    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename == "browser.safetensors"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes() == (stack.workspace.outputs / "browser" / "browser.safetensors").read_bytes()
    with safe_open(str(saved), framework="pt") as handle:
        names = handle.keys()
    assert any(name.startswith("lora_unet_") for name in names)

    page.goto(url + "/")  # the A/B panel: a run against itself differs nowhere, samples side by side
    page.select_option("#compare-a", "browser")
    page.select_option("#compare-b", "browser")
    page.click("#compare-button")
    expect(page.locator("#compare-samples img")).to_have_count(2 * len(view["samples"]))
    expect(page.locator("#compare-table tbody tr")).to_have_count(0)
    page.shot("04-dashboard")
    assert page.errors == []

    # issue 9 acceptance 5: the bridge publishes the LoRA and test-renders it through ComfyUI
    published = stack.workspace.models / "loras" / "browser.safetensors"
    sheet = stack.workspace.outputs / "browser" / "comfy" / "contact_sheet.png"
    stack.wait_for(sheet.is_file, "the strength-sweep contact sheet", timeout=120)
    assert published.read_bytes() == saved.read_bytes()
    assert stat.S_IMODE(os.stat(published).st_mode) == 0o644
    sidecar = json.loads(published.with_suffix(".json").read_text())
    assert sidecar["job_id"] == job_id and sidecar["family"] == "sd15"
    assert sidecar["sample_prompts"] == ["lpdemo a photo"]
    sweep = json.loads((sheet.parent / "sweep.json").read_text())
    assert sweep["strengths"] == [0, 0.5, 1.0]
    loaders = [n for w in comfyui.prompts for n in w.values() if n["class_type"] == "LoraLoader"]
    assert {n["inputs"]["lora_name"] for n in loaders} == {"browser.safetensors"}
    assert [n["inputs"]["strength_model"] for n in loaders] == [0, 0.5, 1.0]
    with Image.open(sheet.parent / sweep["images"][0][0]) as tile, Image.open(sheet) as image:
        assert image.size == (3 * tile.width, tile.height + 18)  # a labelled column per strength
