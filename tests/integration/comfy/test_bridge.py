"""The comfybridge service: publishes each done job once, survives restarts, keeps going when a job is
broken or ComfyUI is down, and renders the strength sweep once ComfyUI answers."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from PIL import Image

from lorapilot.comfy.bridge import STATE_FILE, Bridge
from lorapilot.comfy.client import ComfyClient
from lorapilot.comfy.settings import load_settings
from lorapilot.comfy.sweep import render_sweep
from lorapilot.testing.trained_runs import add_done_job
from lorapilot.trainpilot.cli import main as trainpilot

COMFYBRIDGE = shutil.which("comfybridge") or str(Path(sys.executable).with_name("comfybridge"))
SETTINGS = {"strengths": [0, 0.5, 0.8, 1.0], "bases": {"sd15": {"ckpt_name": "base-sd15.safetensors"}}}


def configure(ws, url: str | None = None) -> None:
    (ws.config / "comfy.yaml").write_text(yaml.safe_dump({**SETTINGS, **({"url": url} if url else {})}))


def dead_url() -> str:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_publishes_each_done_job_once_and_remembers_across_restarts(comfy_ws, runs):
    configure(comfy_ws)
    first = add_done_job(comfy_ws, runs["first"], "my_lora")
    broken = add_done_job(comfy_ws, runs["first"], "broken")
    (comfy_ws.outputs / "broken" / "broken.safetensors").unlink()
    bridge = Bridge(comfy_ws, test=False)
    assert [p.job_id for p in bridge.cycle()] == [first.id]
    assert bridge.cycle() == []  # nothing new
    second = add_done_job(comfy_ws, runs["second"], "my_lora", folder="again")
    restarted = Bridge(comfy_ws, test=False)  # a fresh process reads the state file
    assert [p.lora.name for p in restarted.cycle()] == ["my_lora_v2.safetensors"]
    state = json.loads((comfy_ws.config / STATE_FILE).read_text())
    assert set(state["published"]) == {first.id, second.id}
    assert "missing" in state["skipped"][broken.id]
    assert len(list(comfy_ws.model_dir("loras").glob("*.safetensors"))) == 2  # no periodic saves by default


def test_periodic_saves_are_published_on_request(comfy_ws, runs):
    configure(comfy_ws)
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    folder = comfy_ws.outputs / "my_lora"
    step_saves = sorted(p.name for p in folder.glob("my_lora-step*.safetensors"))
    assert step_saves
    # an epoch save, as save.every_n_epochs names it (other bytes: the same bytes are published once)
    shutil.copyfile(runs["second"] / step_saves[0], folder / "my_lora-000001.safetensors")
    saves = [*step_saves, "my_lora-000001.safetensors"]
    Bridge(comfy_ws, test=False, checkpoints=True).cycle()
    loras = comfy_ws.model_dir("loras")
    assert sorted(p.name for p in loras.glob("*.safetensors")) == sorted(["my_lora.safetensors", *saves])
    for name in saves:
        assert (loras / name).read_bytes() == (comfy_ws.outputs / "my_lora" / name).read_bytes()
        sidecar = json.loads((loras / name).with_suffix(".json").read_text())
        assert sidecar["kind"] == "checkpoint" and sidecar["job_id"] == record.id


def test_comfyui_down_publishes_anyway_and_tests_later(comfy_ws, runs, fake_comfy):
    configure(comfy_ws, dead_url())
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    bridge = Bridge(comfy_ws)
    started = time.monotonic()
    assert len(bridge.cycle()) == 1  # published; the sweep waits and the cycle returns at once
    assert time.monotonic() - started < 5
    assert record.id not in bridge.state.tested
    configure(comfy_ws, fake_comfy.url)  # ComfyUI is up now, at the URL the user saves (no restart)
    assert bridge.cycle() == []
    assert bridge.client.url == fake_comfy.url
    sheet = comfy_ws.outputs / "my_lora" / "comfy" / "contact_sheet.png"
    assert bridge.state.tested[record.id].endswith("comfy") and sheet.is_file()
    assert len(fake_comfy.prompts) == 8  # 2 prompts × 4 strengths


def test_a_backlog_of_sweeps_does_not_hold_up_publishing(comfy_ws, runs, fake_comfy):
    configure(comfy_ws, fake_comfy.url)
    first = add_done_job(comfy_ws, runs["first"], "my_lora")
    second = add_done_job(comfy_ws, runs["second"], "other", folder="other")
    bridge = Bridge(comfy_ws)
    assert {p.job_id for p in bridge.cycle()} == {first.id, second.id}  # both published at once
    assert len(bridge.state.tested) == 1  # and one sweep rendered
    late = add_done_job(comfy_ws, runs["first"], "late", folder="late")
    assert [p.job_id for p in bridge.cycle()] == [late.id]  # the new job before the next sweep
    assert len(bridge.state.tested) == 2
    bridge.cycle()
    assert set(bridge.state.tested) == {first.id, second.id, late.id}


def test_strength_sweep_images_and_contact_sheet(comfy_ws, runs, fake_comfy):
    configure(comfy_ws)
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    Bridge(comfy_ws, test=False).cycle()
    result = render_sweep(comfy_ws, record, ComfyClient(fake_comfy.url), load_settings(comfy_ws), size=64)
    folder = comfy_ws.outputs / "my_lora" / "comfy"
    assert sorted(p.name for p in result.images) == [
        f"p{p:02d}_s{s}.png" for p in (0, 1) for s in ("0.00", "0.50", "0.80", "1.00")
    ]
    pixels = {Image.open(p).getpixel((0, 0)) for p in result.images if p.name.startswith("p00")}
    assert len(pixels) == 4  # each strength renders differently at the same seed
    sheet = Image.open(result.contact_sheet)
    assert sheet.size == (4 * 64, 2 * (64 + 18))
    sweep = json.loads((folder / "sweep.json").read_text())
    assert sweep["seed"] == 42 and sweep["strengths"] == [0, 0.5, 0.8, 1.0]
    seeds = {
        n["inputs"]["seed"] for w in fake_comfy.prompts for n in w.values() if n["class_type"] == "KSampler"
    }
    assert seeds == {42}
    strengths = [
        n["inputs"]["strength_model"]
        for w in fake_comfy.prompts
        for n in w.values()
        if n["class_type"] == "LoraLoader"
    ]
    assert strengths == [0, 0.5, 0.8, 1.0] * 2
    assert result.images[0].read_bytes() != Image.new("RGB", (64, 64)).tobytes()
    assert io.BytesIO(result.contact_sheet.read_bytes()).read(8) == b"\x89PNG\r\n\x1a\n"


def test_two_sweeps_of_one_job_take_turns_and_leave_one_consistent_result(comfy_ws, runs, fake_comfy):
    """The bridge, the CLI and ControlPilot render into the same folder: one sweep at a time."""
    configure(comfy_ws)
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    Bridge(comfy_ws, test=False).cycle()
    fake_comfy.behaviour.step_delay = 0.05
    settings = load_settings(comfy_ws)
    results = {}

    def sweep(strengths):
        client = ComfyClient(fake_comfy.url)
        results[strengths] = render_sweep(comfy_ws, record, client, settings, strengths=strengths, size=64)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in ((0.0, 1.0), (0.25, 0.5, 0.75))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 2
    order = [
        n["inputs"]["strength_model"]
        for w in fake_comfy.prompts
        for n in w.values()
        if n["class_type"] == "LoraLoader"
    ]
    first, second = ([0, 1] * 2, [0.25, 0.5, 0.75] * 2), ([0.25, 0.5, 0.75] * 2, [0, 1] * 2)
    assert order in (first[0] + first[1], second[0] + second[1]), f"the sweeps interleaved: {order}"
    folder = comfy_ws.outputs / "my_lora" / "comfy"
    sweep_json = json.loads((folder / "sweep.json").read_text())
    last = (0.25, 0.5, 0.75) if order[0] == 0 else (0.0, 1.0)
    assert tuple(sweep_json["strengths"]) == last
    with Image.open(folder / "contact_sheet.png") as sheet:
        assert sheet.width == len(last) * 64


def test_trainpilot_comfy_test_blends_another_lora(comfy_ws, runs, fake_comfy, capsys):
    configure(comfy_ws, fake_comfy.url)
    add_done_job(comfy_ws, runs["first"], "my_lora")
    add_done_job(comfy_ws, runs["second"], "style", folder="style")
    ws_args = ["--workspace", str(comfy_ws.root)]
    assert trainpilot(["comfy", "publish", "style", *ws_args]) == 0
    code = trainpilot(
        [
            "comfy",
            "test",
            "my_lora",
            "--strengths",
            "0",
            "1",
            "--with",
            "style:0.6",
            "--size",
            "64",
            "--steps",
            "4",
            *ws_args,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 images in /workspace/outputs/my_lora/comfy" in out
    chains = [
        [
            (n["inputs"]["lora_name"], n["inputs"]["strength_model"])
            for n in w.values()
            if n["class_type"] == "LoraLoader"
        ]
        for w in fake_comfy.prompts
    ]
    assert chains[:2] == [
        [("my_lora.safetensors", 0.0), ("style.safetensors", 0.6)],
        [("my_lora.safetensors", 1.0), ("style.safetensors", 0.6)],
    ]
    assert (comfy_ws.model_dir("loras") / "my_lora.safetensors").is_file()  # published on the way
    assert trainpilot(["comfy", "test", "my_lora", "--with", "nope:0.5", *ws_args]) == 2
    assert "no nope.safetensors in /workspace/models/loras" in capsys.readouterr().err


def test_trainpilot_comfy_test_with_comfyui_down(comfy_ws, runs, capsys):
    configure(comfy_ws, dead_url())
    add_done_job(comfy_ws, runs["first"], "my_lora")
    code = trainpilot(
        ["comfy", "test", "my_lora", "--workspace", str(comfy_ws.root), "--request-timeout", "1"]
    )
    assert code == 1
    assert "ComfyUI is not answering at http://127.0.0.1:" in capsys.readouterr().err


def test_the_comfybridge_service_runs_and_stops_on_sigterm(comfy_ws, runs):
    configure(comfy_ws, dead_url())
    add_done_job(comfy_ws, runs["first"], "my_lora")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lorapilot.comfy.bridge",
            "--workspace",
            str(comfy_ws.root),
            "--interval",
            "0.2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        target = comfy_ws.model_dir("loras") / "my_lora.safetensors"
        deadline = time.monotonic() + 30
        while not target.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert target.is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    assert proc.returncode == 0, output
    assert "published my_lora" in output and "test renders wait for ComfyUI" in output
