"""Real LoRAs from the engine (tiny SD1.5 at 64 px) and finished jobs in a workspace's spool, for the
tests of everything that consumes a finished run (the ComfyUI bridge, ControlPilot's library)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from lorapilot.atomic_files import write_atomic
from lorapilot.families import SD15
from lorapilot.spool import Job, JobRecord, JobState
from lorapilot.spool.job import new_id
from lorapilot.testing.datasets import write_demo_images
from lorapilot.workspace import Workspace


def train_tiny(root: Path, tiny_sd15: Path, name: str, seed: int) -> Path:
    """Train `name` in its own workspace under `root`; returns its run folder."""
    from lorapilot.engine import train  # noqa: PLC0415 - torch only for the tests that train
    from lorapilot.spec import load_spec  # noqa: PLC0415

    ws = Workspace.from_env(root).ensure()
    shutil.copytree(tiny_sd15, ws.model_dir("diffusers") / "tiny-sd15", dirs_exist_ok=True)
    write_demo_images(ws.images / "2_demo", 4, size=(64, 64), caption="lpdemo,")
    doc: dict[str, Any] = {
        "spec_version": 1,
        "model": {"family": SD15.id, "path": "/workspace/models/diffusers/tiny-sd15", "weight_dtype": "fp32"},
        "network": {"dim": 4, "alpha": 4},
        "datasets": [
            {"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}, "trigger_word": "lpdemo"}
        ],
        "training": {
            "max_steps": 3,
            "batch_size": 1,
            "optimizer": "adamw",
            "learning_rate": 1e-3,
            "mixed_precision": "no",
            "seed": seed,
        },
        "sample": {"prompts": ["a photo of lpdemo", "lpdemo on a beach"]},
        "save": {"every_n_steps": 2},
        "output": {"name": name},
    }
    config = ws.root / f"{name}.yaml"
    config.write_text(yaml.safe_dump(doc))
    result = train(load_spec(config, workspace=ws).spec, ws, show_progress=False)
    return result.lora.parent


def add_done_job(ws: Workspace, run: Path, name: str, folder: str | None = None) -> JobRecord:
    """A finished job: its run folder in outputs/, its file in jobs/done/ (as the daemon leaves them)."""
    target = ws.outputs / (folder or name)
    shutil.copytree(run, target)
    spec = json.loads((target / "spec.json").read_text())
    spec["output"]["folder"] = f"/workspace/outputs/{folder or name}"
    if spec["output"]["name"] != name:  # the same trained weights, handed over under another run name
        for path in target.glob(f"{spec['output']['name']}*.safetensors"):
            path.rename(target / path.name.replace(spec["output"]["name"], name, 1))
        spec["output"]["name"] = name
    job = Job(name=name, spec=spec)
    job_id = new_id()
    path = ws.job_dir("done") / f"{job_id}.yaml"
    write_atomic(path, yaml.safe_dump(job.document()).encode())
    return JobRecord(job_id, JobState.DONE, path, job)
