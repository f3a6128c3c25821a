"""ControlPilot's charts and samples grid in Chromium (issue 19 acceptance 4), on the supervised
appliance: finished runs whose metrics.json is written by the engine's own RunLog and whose samples
carry the engine's names (`step…_<prompt>.png`). The loss is smoothed (TensorBoard's EMA, raw points
faint), the slider is remembered, the learning rate has a log scale, hovering names the step and its
values, compare draws both runs, and the samples form a step × prompt grid. Screenshots go to
test-artifacts/controlpilot/."""

from __future__ import annotations

import itertools
import math
import random
import re
import uuid
from pathlib import Path

import pytest
from PIL import Image

from lorapilot.atomic_files import write_json_atomic
from lorapilot.engine.run_folder import RunFolder
from lorapilot.engine.run_log import MetricPoint, RunLog
from lorapilot.spec import TrainSpec
from lorapilot.testing.browser import log_in
from lorapilot.testing.trained_runs import add_done_job

STEPS = 300
PROMPTS = ["[trigger] a photo", "[trigger] on a beach", "a red car"]
SAMPLED = {100: 3, 200: 3, 300: 2}  # step → prompts rendered (the last step is still rendering)


def write_run(root: Path, name: str, seed: int, loss_floor: float) -> Path:
    """A run folder as the trainer leaves it: spec.json, metrics via RunLog, samples by step × prompt."""
    folder = RunFolder(root / name, name).create()
    spec = TrainSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"family": "sd15", "path": "/workspace/models/diffusers/tiny-sd15"},
            "datasets": [{"folder": "demo", "trigger_word": "lpdemo"}],
            "training": {"max_steps": STEPS, "learning_rate": 1e-4},
            "sample": {"every": 100, "prompts": [PROMPTS[0], {"text": PROMPTS[1], "seed": 7}, PROMPTS[2]]},
            "output": {"name": name, "folder": f"/workspace/outputs/{name}"},
        }
    )
    write_json_atomic(folder.spec_json, spec.model_dump(mode="json"))
    noise = random.Random(seed)
    log = RunLog(folder.logs)
    try:
        for step in range(1, STEPS + 1):  # diffusion loss: a slow trend under large per-step noise
            loss = loss_floor + 0.08 * math.exp(-step / 80) + noise.uniform(-0.05, 0.05)
            lr = 1e-7 + (1e-4 - 1e-7) * 0.5 * (1 + math.cos(math.pi * (step - 1) / (STEPS - 1)))  # to 1e-7
            log.record(MetricPoint(step, loss, lr, it_per_s=2.0, epoch=0, elapsed_s=step / 2))
    finally:
        log.close()
    for step, rendered in SAMPLED.items():
        for prompt in range(rendered):
            colour = (step * 80 // STEPS, 60 + 60 * prompt, 120)
            Image.new("RGB", (64, 64), colour).save(folder.sample(step, prompt))
    return folder.root


@pytest.fixture
def runs(stack, tmp_path) -> dict[str, dict]:
    """Two finished runs in the appliance's spool: name → {id, folder, metrics}."""
    found = {}
    for n, floor in enumerate((0.10, 0.16)):
        name = f"charts_{uuid.uuid4().hex[:6]}_{n}"
        run = write_run(tmp_path, name, seed=n, loss_floor=floor)
        record = add_done_job(stack.workspace, run, name)
        found[name] = {"id": record.id, "folder": stack.workspace.outputs / name}
    return found


def polyline(page, chart: str, role: str, run: str | None = None) -> list[tuple[float, float]]:
    selector = f'{chart} polyline[data-role="{role}"]' + (f'[data-run="{run}"]' if run else "")
    text = page.locator(selector).get_attribute("points")
    return [tuple(float(v) for v in pair.split(",")) for pair in text.split()]


def wiggle(points: list[tuple[float, float]]) -> float:
    """How far the line goes up and down in pixels: small for a smooth curve, large for noise."""
    return sum(abs(b[1] - a[1]) for a, b in itertools.pairwise(points))


def set_slider(page, selector: str, value: float) -> None:
    page.locator(selector).fill(str(value))


def js_exponential(value: float) -> str:
    """`value.toExponential(2)` as the page writes it: 5.01e-5, not Python's 5.01e-05."""
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{value:.2e}")


def ticks(page, chart: str) -> list[str]:
    return page.locator(f"{chart} .y-ticks text").all_text_contents()


def test_the_job_page_smooths_the_loss_has_a_log_lr_hover_values_and_a_samples_grid(page, stack, runs):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    name, run = next(iter(runs.items()))
    log_in(page, url, stack.password, f"/jobs/{run['id']}")
    expect(page.locator("#job-title")).to_have_text(f"{name} — done")
    expect(page.locator('#loss-plot polyline[data-role="smoothed"]')).to_have_count(1)
    expect(page.locator("#loss-plot")).to_have_attribute("data-points", str(STEPS))

    # the default smoothing (0.9) makes a calm curve of the noisy steps
    expect(page.locator("#loss-smoothing")).to_have_value("0.9")
    expect(page.locator("#loss-plot")).to_have_attribute("data-smoothing", "0.90")
    raw, smoothed = polyline(page, "#loss-plot", "raw"), polyline(page, "#loss-plot", "smoothed")
    assert len(raw) == len(smoothed) == STEPS
    assert [x for x, _ in raw] == [x for x, _ in smoothed] and raw != smoothed
    assert wiggle(smoothed) < wiggle(raw) / 2, (wiggle(smoothed), wiggle(raw))
    assert page.evaluate("smoothValues([1, 2, 3], 0.5)") == pytest.approx([1, 5 / 3, 2.125 / 0.875])
    page.shot("charts-01-job-smoothed")

    set_slider(page, "#loss-smoothing", 0.95)
    expect(page.locator("#loss-plot")).to_have_attribute("data-smoothing", "0.95")
    assert wiggle(polyline(page, "#loss-plot", "smoothed")) < wiggle(smoothed)
    set_slider(page, "#loss-smoothing", 0)
    expect(page.locator("#loss-plot")).to_have_attribute("data-smoothing", "0.00")
    assert polyline(page, "#loss-plot", "smoothed") == polyline(page, "#loss-plot", "raw")
    page.reload()  # remembered: the page opens with the slider where it was left
    expect(page.locator("#loss-smoothing")).to_have_value("0")
    expect(page.locator("#loss-plot")).to_have_attribute("data-smoothing", "0.00")
    expect(page.locator('#loss-plot polyline[data-role="smoothed"]')).to_have_count(1)
    assert polyline(page, "#loss-plot", "smoothed") == polyline(page, "#loss-plot", "raw")
    set_slider(page, "#loss-smoothing", 0.9)

    # the learning rate on a log scale: decades on the axis instead of even steps
    expect(page.locator("#lr-plot svg")).to_have_attribute("data-scale", "linear")
    linear = ticks(page, "#lr-plot")
    page.check("#lr-log")
    expect(page.locator("#lr-plot svg")).to_have_attribute("data-scale", "log")
    assert ticks(page, "#lr-plot") == ["1e-7", "1e-6", "1e-5", "1e-4"] != linear
    page.shot("charts-02-lr-log")

    # hover: the tooltip names the nearest step and its raw and smoothed loss
    metrics = stack.client().ok("GET", f"/api/jobs/{run['id']}/metrics")
    step = 150
    box = page.locator("#loss-plot svg").bounding_box()
    x = raw[step - 1][0] * box["width"] / 680  # the points are in the 680-wide viewBox
    page.mouse.move(box["x"] + x, box["y"] + box["height"] / 2)
    tip = page.locator("#loss-plot .chart-tip")
    expect(tip).to_be_visible()
    expect(tip).to_have_attribute("data-step", str(step))
    expect(tip).to_contain_text(f"step {step}")
    expect(tip).to_contain_text(f"raw {metrics['loss'][step - 1]:#.4g}")
    expect(tip).to_contain_text("smoothed ")
    page.wait_for_timeout(1500)  # the page polls every second; the tooltip stays put
    expect(tip).to_have_attribute("data-step", str(step))
    page.shot("charts-03-hover")
    lr_box = page.locator("#lr-plot svg").bounding_box()
    page.mouse.move(lr_box["x"] + x, lr_box["y"] + lr_box["height"] / 2)
    expect(page.locator("#lr-plot .chart-tip")).to_contain_text(
        f"lr {js_exponential(metrics['lr'][step - 1])}"
    )
    page.mouse.move(0, 0)
    expect(page.locator(".chart-tip")).to_have_count(0)

    # samples: a row per step, a column per prompt, each image where the engine's name puts it
    grid = page.locator("#samples .samples-grid")
    expect(grid.locator("thead th[data-prompt]")).to_have_text(PROMPTS)
    expect(grid.locator("tbody tr")).to_have_count(len(SAMPLED))
    assert grid.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.step)") == [
        str(s) for s in SAMPLED
    ]
    folder = RunFolder(run["folder"], name)
    for row, (step, rendered) in enumerate(SAMPLED.items()):
        cells = grid.locator("tbody tr").nth(row).locator("td")
        expect(cells).to_have_count(len(PROMPTS))
        for prompt in range(len(PROMPTS)):
            image = cells.nth(prompt).locator("img")
            if prompt >= rendered:
                expect(image).to_have_count(0)
                continue
            src = image.get_attribute("src")
            assert src == f"/api/jobs/{run['id']}/samples/{folder.sample(step, prompt).name}"
            expect(image).to_have_js_property("naturalWidth", 64)
    page.shot("charts-04-samples-grid")
    assert page.errors == []


def test_compare_draws_both_runs_smoothed_with_the_same_slider(page, stack, runs):
    from playwright.sync_api import expect  # noqa: PLC0415

    url = stack.url("controlpilot")
    (a, _), (b, _) = runs.items()
    log_in(page, url, stack.password)
    page.select_option("#compare-a", a)
    page.select_option("#compare-b", b)
    page.click("#compare-button")
    expect(page.locator("#compare-charts")).to_be_visible()
    for run in (a, b):
        for role in ("raw", "smoothed"):
            expect(
                page.locator(f'#compare-loss-plot polyline[data-role="{role}"][data-run="{run}"]')
            ).to_have_count(1)
        smoothed = polyline(page, "#compare-loss-plot", "smoothed", run)
        assert wiggle(smoothed) < wiggle(polyline(page, "#compare-loss-plot", "raw", run)) / 2
    expect(page.locator("#compare-lr-plot polyline")).to_have_count(2)
    expect(page.locator("#compare-legend")).to_contain_text(a)
    # B's loss sits higher (a higher floor): its smoothed curve is above A's (smaller y) on average
    mean_y = {
        run: sum(y for _, y in polyline(page, "#compare-loss-plot", "smoothed", run)) / STEPS
        for run in (a, b)
    }
    assert mean_y[b] < mean_y[a]
    for run in (a, b):  # each run's samples as its own step × prompt grid
        grid = page.locator(f'#compare-samples [data-run="{run}"] .samples-grid')
        expect(grid.locator("thead th[data-prompt]")).to_have_text(PROMPTS)
        expect(grid.locator("tbody tr")).to_have_count(len(SAMPLED))
        images = grid.locator("img")
        expect(images).to_have_count(sum(SAMPLED.values()))
        for n in range(images.count()):
            expect(images.nth(n)).to_have_js_property("naturalWidth", 64)
    page.shot("charts-05-compare")

    box = page.locator("#compare-loss-plot svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator("#compare-loss-plot .chart-tip")
    expect(tip.locator(f'[data-run="{a}"]')).to_contain_text("smoothed")
    expect(tip.locator(f'[data-run="{b}"]')).to_contain_text("raw")
    page.mouse.move(0, 0)

    set_slider(page, "#compare-smoothing", 0)
    expect(page.locator("#compare-loss-plot")).to_have_attribute("data-smoothing", "0.00")
    for run in (a, b):
        assert polyline(page, "#compare-loss-plot", "smoothed", run) == polyline(
            page, "#compare-loss-plot", "raw", run
        )
    page.check("#compare-lr-log")
    expect(page.locator("#compare-lr-plot svg")).to_have_attribute("data-scale", "log")
    page.shot("charts-06-compare-raw-log")
    assert page.errors == []
