"""The appliance natively under supervisord: programs run, jobs go from a dataset to a LoRA, and a
supervisord stop of the trainer in mid-job leaves a job that the next start finishes."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

import yaml
from PIL import Image
from safetensors import safe_open

from lorapilot.testing.web_client import ApplianceClient

JOB = {
    "spec_version": 1,
    "model": {"family": "sd15", "path": "/workspace/models/diffusers/tiny-sd15", "weight_dtype": "fp32"},
    "network": {"dim": 4, "alpha": 4},
    "datasets": [{"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}}],
    "training": {"max_steps": 60, "batch_size": 2, "optimizer": "adamw", "mixed_precision": "no"},
    "save": {"every_n_steps": 5},
}


def run_status(app, name: str) -> dict:
    path = app.workspace.outputs / name / "status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_every_program_runs_and_the_health_check_passes(appliance):
    states = appliance.wait_until_running("trainpilot", "tagpilot", "controlpilot", "comfybridge")
    assert states["comfyui"] == "STOPPED"  # this machine has no ComfyUI: the program does not start
    assert states["sshd"] == "STOPPED"  # no PUBLIC_KEY: no SSH server
    assert states["ray"] == "STOPPED"  # no LORAPILOT_RAY_ROLE: no Ray node
    assert set(states) == {
        "trainpilot",
        "tagpilot",
        "controlpilot",
        "comfybridge",
        "comfyui",
        "sshd",
        "idlestop",
        "ray",
    }
    port = appliance.env["LORAPILOT_TAGPILOT_PORT"]
    appliance.wait_for(lambda: healthz(port) == 200, "TagPilot's /healthz")
    control_port = appliance.env["LORAPILOT_CONTROLPILOT_PORT"]
    appliance.wait_for(lambda: healthz(control_port) == 200, "ControlPilot's /healthz")
    health = appliance.run("lorapilot-appliance", "health", "--config", str(appliance.config))
    assert "trainpilot: RUNNING" in health.stdout
    assert f"tagpilot: RUNNING http://127.0.0.1:{port}/healthz answered 200" in health.stdout
    control = appliance.env["LORAPILOT_CONTROLPILOT_PORT"]
    assert f"controlpilot: RUNNING http://127.0.0.1:{control}/healthz answered 200" in health.stdout
    assert "comfyui: STOPPED" in health.stdout and "ray: STOPPED" in health.stdout
    assert "sshd: STOPPED" in health.stdout
    assert "unhealthy" not in health.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert answer.status == 200
    try:  # everything else needs the appliance password
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/datasets", timeout=5)
        refused = None
    except urllib.error.HTTPError as exc:
        refused = exc.code
    assert refused in (401, 403)


def healthz(port: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status
    except OSError:
        return None


def demo_pngs(count: int) -> list[tuple[str, bytes]]:
    files = []
    for k in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (96, 80), (40 * k, 120, 200 - 30 * k)).save(buffer, format="PNG")
        files.append((f"shot{k}.png", buffer.getvalue()))
    return files


def test_images_uploaded_to_tagpilot_become_a_lora_through_the_running_appliance(appliance):
    """The guide's path: upload and caption in TagPilot, export, queue with the CLI, get a LoRA."""
    appliance.wait_for(lambda: appliance.states().get("trainpilot") == "RUNNING", "trainpilot RUNNING")
    port = appliance.env["LORAPILOT_TAGPILOT_PORT"]
    appliance.wait_for(lambda: healthz(port) == 200, "TagPilot's /healthz")
    client = ApplianceClient(f"http://127.0.0.1:{port}")
    assert client.login(appliance.env["LORAPILOT_PASSWORD"]).ok
    dataset = client.new_dataset("e2e")
    assert client.upload(dataset, demo_pngs(4)).ok
    client.ok("POST", f"/api/datasets/{dataset}/captions/bulk", json={"op": "trigger", "word": "lpe2e"})
    exported = client.ok("POST", f"/api/datasets/{dataset}/export", json={"repeats": 2})
    assert exported["folder"] == f"/workspace/datasets/images/2_{dataset}"

    appliance.run(
        "trainpilot",
        "run",
        "--profile",
        "quick_test",
        "--dataset",
        dataset,
        "--name",
        "e2e",
        "--set",
        "model.path=/workspace/models/diffusers/tiny-sd15",
        "--set",
        "model.weight_dtype=fp32",
        "--set",
        "training.mixed_precision=no",
        "--set",
        "training.max_steps=4",
        "--set",
        "datasets[0].resolutions=[64]",
    )
    lora = appliance.workspace.outputs / "e2e" / "e2e.safetensors"
    assert lora.is_file()
    assert len(list((appliance.workspace.jobs / "done").glob("*.yaml"))) == 1
    listing = appliance.run("trainpilot", "list").stdout
    assert "e2e" in listing and "done" in listing
    with safe_open(str(lora), framework="pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["ss_dataset_dirs"]) == {f"2_{dataset}": {"n_repeats": 2, "img_count": 4}}
    assert "lpe2e" in json.loads(meta["ss_tag_frequency"])[f"2_{dataset}"]


def test_supervisorctl_stop_mid_job_leaves_state_and_start_finishes_the_job(appliance, tmp_path):
    appliance.wait_for(lambda: appliance.states().get("trainpilot") == "RUNNING", "trainpilot RUNNING")
    config = tmp_path / "stopme.yaml"
    config.write_text(yaml.safe_dump(JOB))
    appliance.run("trainpilot", "submit", str(config))
    appliance.wait_for(lambda: run_status(appliance, "stopme").get("step", 0) >= 12, "step 12", timeout=300)

    stop = appliance.ctl("stop", "trainpilot")
    assert "stopped" in stop.stdout, stop.stdout + stop.stderr
    stopped_at = run_status(appliance, "stopme")
    assert 12 <= stopped_at["step"] < 60
    assert len(list((appliance.workspace.jobs / "running").glob("*.yaml"))) == 1, "the job must stay queued"
    assert (appliance.workspace.outputs / "stopme" / "state").is_dir()
    assert not (appliance.workspace.outputs / "stopme" / "stopme.safetensors").exists()

    appliance.ctl("start", "trainpilot")
    appliance.wait_for(
        lambda: any((appliance.workspace.jobs / "done").glob("*.yaml")), "the job in done/", timeout=300
    )
    assert (appliance.workspace.outputs / "stopme" / "stopme.safetensors").is_file()
    train_log = (appliance.workspace.outputs / "stopme" / "_logs" / "train.log").read_text()
    assert "resuming at step" in train_log
    resumed_from = int(train_log.split("resuming at step")[1].split()[0])
    assert resumed_from >= 10, f"resumed from {resumed_from}, not from the last save"
