"""Issues 8 and 9 in the browser, on the supervised appliance: the Monitor panel's sparklines fill in,
a config file chosen in the Training form validates like a pasted one (and an oversized one is
refused before it is sent), and a finished job's page publishes its LoRA to ComfyUI and shows the
contact sheet of a strength sweep rendered through the (fake) ComfyUI. Screenshots go to
test-artifacts/controlpilot/."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from PIL import Image

from lorapilot.testing.browser import log_in

TINY_JOB = [  # a 6-step job on the tiny SD1.5 model at 64 px: well under a minute on a CPU
    "model.path=/workspace/models/diffusers/tiny-sd15",
    "model.weight_dtype=fp32",
    "training.mixed_precision=no",
    "training.max_steps=6",
    "datasets[0].resolutions=[64]",
    "sample.every=6",
    "sample.prompts=[lpdemo a photo]",
    "sample.steps=2",
    "sample.width=64",
    "sample.height=64",
]
CONFIG = """\
model:
  pretrained_model_name_or_path: /workspace/models/diffusers/tiny-sd15
training:
  max_train_stepz: 7
"""


TWO_OR_MORE = re.compile(r"^([2-9]|[1-9]\d+)$")


def spark_points(page, series: str) -> int:
    return int(page.locator(f'.spark[data-series="{series}"]').get_attribute("data-points"))


def test_the_monitor_draws_sparklines_that_fill_in(page, stack):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    log_in(page, url, stack.password)
    expect(page.locator("#models-link")).to_have_attribute("href", "/models")
    for series in ("cpu", "ram"):
        expect(page.locator(f'.spark[data-series="{series}"]')).to_be_visible()
    for series in ("cpu", "ram"):  # one history sample a second; the page polls every two
        expect(page.locator(f'.spark[data-series="{series}"]')).to_have_attribute(
            "data-points", TWO_OR_MORE, timeout=15_000
        )
    assert spark_points(page, "cpu") >= 2 and spark_points(page, "ram") >= 2
    expect(page.locator('.spark[data-series="cpu"] polyline')).to_have_count(1)
    if page.locator(".gpu").count():
        expect(page.locator('.gpu .spark[data-series="gpu0-util"]')).to_be_visible()
    else:
        expect(page.locator("#no-gpu")).to_contain_text("No GPU: ")
    page.shot("extras-01-monitor")
    assert page.errors == []


def test_a_chosen_config_file_validates_like_a_pasted_one(page, stack, tmp_path):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    log_in(page, url, stack.password)
    typo = tmp_path / "mine.yaml"
    typo.write_text(CONFIG, encoding="utf-8")
    page.fill("#start-dataset", "demo")
    page.fill("#start-name", "uploaded")
    page.set_input_files("#start-config-file", str(typo))
    expect(page.locator("#start-config")).to_have_value(CONFIG)
    expect(page.locator("#validation")).to_contain_text("loaded mine.yaml")
    page.click("#validate-button")
    expect(page.locator("#validation")).to_contain_text(
        "(pasted config): training.max_train_stepz: unknown key"
    )
    expect(page.locator("#validation")).to_contain_text("did you mean 'max_train_steps'")

    fixed = tmp_path / "fixed.yml"
    fixed.write_text(CONFIG.replace("stepz", "steps"), encoding="utf-8")
    page.set_input_files("#start-config-file", str(fixed))
    expect(page.locator("#start-config")).to_have_value(CONFIG.replace("stepz", "steps"))
    page.click("#validate-button")
    expect(page.locator("#validation")).to_contain_text("valid: uploaded, sd15, 7 steps")
    page.shot("extras-02-config-file")

    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (5 * 1024 * 1024))
    page.set_input_files("#start-config-file", str(huge))
    expect(page.locator("#validation")).to_contain_text(
        "huge.yaml is 5.0 MiB; ControlPilot accepts configs up to 4.0 MiB"
    )
    expect(page.locator("#start-config")).to_have_value(CONFIG.replace("stepz", "steps"))  # left as it was
    assert page.errors == []


@pytest.fixture
def done_job(stack) -> dict:
    """A tiny job of its own, finished, and already tested by the bridge (so no render races the page's)."""
    api = stack.client()
    name = f"extras_{uuid.uuid4().hex[:8]}"
    job = api.ok(
        "POST",
        "/api/jobs",
        json={"profile": "quick_test", "dataset": "demo", "name": name, "overrides": TINY_JOB},
    )
    view = stack.wait_for(
        lambda: (
            (v := api.ok("GET", f"/api/jobs/{job['id']}"))["state"] in ("done", "failed", "cancelled") and v
        ),
        f"job {name} to finish",
        timeout=300,
    )
    assert view["state"] == "done", view
    bridge_state = stack.workspace.config / "comfybridge-state.json"
    stack.wait_for(
        lambda: job["id"] in json.loads(bridge_state.read_text()).get("tested", {}),
        f"the bridge's own test render of {name}",
        timeout=120,
    )
    return job


def test_a_finished_jobs_page_publishes_and_test_renders_through_comfyui(page, stack, comfyui, done_job):
    from playwright.sync_api import expect  # noqa: PLC0415

    url, name = stack.url("controlpilot"), done_job["name"]
    log_in(page, url, stack.password, f"/jobs/{done_job['id']}")
    expect(page.locator("#job-title")).to_have_text(f"{name} — done")
    publish = page.locator("#comfy-publish-button")
    expect(publish).to_be_enabled(timeout=10_000)
    publish.click()
    expect(page.locator("#comfy-message")).to_contain_text(f"published as {name}.safetensors")
    expect(page.locator("#comfy-published")).to_have_text(f"Published to models/loras/ as {name}.safetensors")
    assert (stack.workspace.models / "loras" / f"{name}.safetensors").is_file()

    rendered_before = len(comfyui.prompts)
    page.fill("#comfy-strengths", "0, 1")
    page.click("#comfy-test-button")
    expect(page.locator("#comfy-render")).to_contain_text(
        "Rendered 2 images (strengths 0, 1)", timeout=60_000
    )
    sheet = page.locator("#comfy-contact-sheet")
    expect(sheet).to_be_visible()
    expect(sheet).to_have_attribute("src", re.compile(r"/comfy/files/contact_sheet\.png\?v="))
    page.wait_for_timeout(500)  # let the image decode
    with Image.open(stack.workspace.outputs / name / "comfy" / "p00_s1.00.png") as tile:
        assert page.evaluate("(img) => img.naturalWidth", sheet.element_handle()) == 2 * tile.width
    page.shot("extras-03-comfyui")

    mine = [
        node["inputs"]
        for workflow in comfyui.prompts[rendered_before:]
        for node in workflow.values()
        if node["class_type"] == "LoraLoader"
    ]
    assert [(n["lora_name"], n["strength_model"]) for n in mine] == [
        (f"{name}.safetensors", 0.0),
        (f"{name}.safetensors", 1.0),
    ]
    render = json.loads((stack.workspace.outputs / name / "comfy" / "test-render.json").read_text())
    assert render["state"] == "done" and render["contact_sheet"] == "contact_sheet.png"
    assert page.errors == []
