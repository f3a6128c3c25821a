"""`trainpilot train FILE`: a foreground run from the command line, as a user starts it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace

TRAINPILOT = shutil.which("trainpilot") or str(Path(sys.executable).with_name("trainpilot"))
CONFIG = """# the guide's SD1.5 kohya block, shrunk for the tiny model
model:
  pretrained_model_name_or_path: "/workspace/models/diffusers/tiny-sd15"
  v2: false
training:
  resolution: 64
  batch_size: 2
  learning_rate: 1e-3
  max_train_steps: 4
  save_every_n_steps: 2
  mixed_precision: no
network:
  network_dim: 4
  network_alpha: 4
dataset:
  enable_bucket: false
"""


def run(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORAPILOT_WORKSPACE": str(ws.root), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [TRAINPILOT, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def test_train_runs_a_kohya_config_and_says_where_the_files_are(tmp_path, tiny_models):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    shutil.copytree(tiny_models["sd15"], ws.model_dir("diffusers") / "tiny-sd15")
    write_demo_images(ws.images / "1_my_dataset", 4, size=(64, 64), caption="lpdemo,")
    config = ws.root / "my_lora.yaml"
    config.write_text(CONFIG)
    done = run(ws, "train", str(config), "--dataset", "my_dataset", "--set", "model.weight_dtype=fp32")
    assert done.returncode == 0, done.stderr[-2000:]
    lora = ws.outputs / "my_lora" / "my_lora.safetensors"
    assert f"LoRA:    {lora}" in done.stdout and lora.is_file()
    assert "_logs/train.log" in done.stdout
    assert (ws.outputs / "my_lora" / "my_lora-step00000002.safetensors").is_file()


def test_a_killed_training_resumes_to_the_same_lora_as_an_uninterrupted_one(tmp_path, tiny_models):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    shutil.copytree(tiny_models["sd15"], ws.model_dir("diffusers") / "tiny-sd15")
    write_demo_images(ws.images / "1_my_dataset", 4, size=(64, 64), caption="lpdemo,")
    config = ws.root / "long.yaml"
    config.write_text(
        CONFIG.replace("max_train_steps: 4", "max_train_steps: 120").replace(
            "save_every_n_steps: 2", "save_every_n_steps: 10"
        )
    )
    args = ["train", str(config), "--dataset", "my_dataset", "--set", "model.weight_dtype=fp32"]
    env = {**os.environ, "LORAPILOT_WORKSPACE": str(ws.root), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [TRAINPILOT, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = ws.outputs / "long" / "state" / "trainer.pt"
    deadline = time.monotonic() + 300
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (ws.outputs / "long" / "long.safetensors").exists(), (
        "the run finished before it could be killed"
    )

    assert run(ws, *args).returncode == 0  # resumes from the saved state
    straight = run(ws, *args, "--name", "straight", "--restart")
    assert straight.returncode == 0
    a = load_file(str(ws.outputs / "long" / "long.safetensors"))
    b = load_file(str(ws.outputs / "straight" / "straight.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=1e-6, rtol=1e-5, msg=key)
    assert "resuming at step" in (ws.outputs / "long" / "_logs" / "train.log").read_text()


def test_train_reports_a_broken_image_by_name_without_a_traceback(tmp_path, tiny_models):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    shutil.copytree(tiny_models["sd15"], ws.model_dir("diffusers") / "tiny-sd15")
    write_demo_images(ws.images / "1_my_dataset", 2, size=(64, 64))
    (ws.images / "1_my_dataset" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    config = ws.root / "bad.yaml"
    config.write_text(CONFIG)
    done = run(ws, "train", str(config), "--dataset", "my_dataset")
    assert done.returncode == 1
    assert "training failed:" in done.stderr and "broken.jpg" in done.stderr
    assert "Traceback" not in done.stderr


def test_train_reports_a_dataset_it_cannot_use_without_a_traceback(tmp_path, tiny_models):
    ws = Workspace.from_env(tmp_path / "ws").ensure()
    shutil.copytree(tiny_models["sd15"], ws.model_dir("diffusers") / "tiny-sd15")
    (ws.images / "1_unreadable").mkdir()
    (ws.images / "1_unreadable" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    config = ws.root / "skip.yaml"
    config.write_text(CONFIG)
    done = run(ws, "train", str(config), "--dataset", "unreadable", "--set", "training.skip_bad_images=true")
    assert done.returncode == 1
    assert "training failed: dataset folder" in done.stderr and "has no usable images" in done.stderr
    assert "Traceback" not in done.stderr
