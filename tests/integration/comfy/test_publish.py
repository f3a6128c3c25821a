"""Acceptance 1: on real engine output, the LoRA lands in models/loras/ with identical bytes, mode 0644
and its sidecar; a second job of the same name gets a versioned file; nothing is overwritten."""

from __future__ import annotations

import json
import os
import stat

import pytest

from lorapilot.comfy.errors import PublishError
from lorapilot.comfy.publish import publish, sha256_of
from lorapilot.testing.trained_runs import add_done_job
from lorapilot.trainpilot.cli import main as trainpilot


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_publish_two_jobs_of_one_name(comfy_ws, runs):
    loras = comfy_ws.model_dir("loras")
    first = add_done_job(comfy_ws, runs["first"], "my_lora")
    source = comfy_ws.outputs / "my_lora" / "my_lora.safetensors"
    source.chmod(0o600)  # as a plain safetensors save leaves it

    one = publish(comfy_ws, first)
    assert one.lora == loras / "my_lora.safetensors"
    assert one.lora.read_bytes() == source.read_bytes()
    assert mode(one.lora) == 0o644 and mode(one.sidecar) == 0o644
    sidecar = json.loads(one.sidecar.read_text())
    assert sidecar["job_id"] == first.id and sidecar["name"] == "my_lora"
    assert sidecar["family"] == "sd15"
    assert sidecar["base_model"].endswith("models/diffusers/tiny-sd15")
    assert sidecar["trigger_words"] == ["lpdemo"] and sidecar["activation text"] == "lpdemo"
    assert sidecar["sample_prompts"] == ["a photo of lpdemo", "lpdemo on a beach"]
    assert sidecar["sha256"] == sha256_of(source)

    first_bytes = one.lora.read_bytes()
    second = add_done_job(comfy_ws, runs["second"], "my_lora", folder="my_lora-again")
    two = publish(comfy_ws, second)
    assert two.lora == loras / "my_lora_v2.safetensors" and not two.reused
    assert two.lora.read_bytes() == (runs["second"] / "my_lora.safetensors").read_bytes() != first_bytes
    assert json.loads(two.sidecar.read_text())["job_id"] == second.id
    assert (loras / "my_lora.safetensors").read_bytes() == first_bytes  # untouched

    again = publish(comfy_ws, first)  # publishing a job twice makes no second copy
    assert again.reused and again.lora == one.lora
    assert sorted(p.name for p in loras.iterdir()) == [
        "my_lora.json",
        "my_lora.safetensors",
        "my_lora_v2.json",
        "my_lora_v2.safetensors",
    ]


def test_a_users_own_file_is_never_overwritten(comfy_ws, runs):
    loras = comfy_ws.model_dir("loras")
    (loras / "my_lora.safetensors").write_bytes(b"the user's own LoRA")
    (loras / "my_lora_v2.json").write_text("{}")  # a stray sidecar also blocks its name
    published = publish(comfy_ws, add_done_job(comfy_ws, runs["first"], "my_lora"))
    assert published.lora.name == "my_lora_v3.safetensors"
    assert (loras / "my_lora.safetensors").read_bytes() == b"the user's own LoRA"
    assert (loras / "my_lora_v2.json").read_text() == "{}"
    assert not list(loras.glob(".*"))  # no temp files left


def test_a_crash_between_sidecar_and_lora_is_finished_not_duplicated(comfy_ws, runs):
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    published = publish(comfy_ws, record)
    published.lora.unlink()  # as if the process died after reserving the sidecar
    again = publish(comfy_ws, record)
    assert (
        again.lora == published.lora
        and again.lora.read_bytes() == (comfy_ws.outputs / "my_lora" / "my_lora.safetensors").read_bytes()
    )
    assert len(list(comfy_ws.model_dir("loras").glob("*.safetensors"))) == 1


def test_a_done_job_without_its_lora_is_an_error(comfy_ws, runs):
    record = add_done_job(comfy_ws, runs["first"], "my_lora")
    (comfy_ws.outputs / "my_lora" / "my_lora.safetensors").unlink()
    with pytest.raises(PublishError, match=r"finished but .*my_lora\.safetensors is missing"):
        publish(comfy_ws, record)


def test_trainpilot_comfy_publish(comfy_ws, runs, capsys):
    add_done_job(comfy_ws, runs["first"], "my_lora")
    assert trainpilot(["comfy", "publish", "my_lora", "--workspace", str(comfy_ws.root)]) == 0
    out = capsys.readouterr().out
    assert "my_lora published as /workspace/models/loras/my_lora.safetensors" in out
    assert trainpilot(["comfy", "publish", "my_lora", "--workspace", str(comfy_ws.root)]) == 0
    assert "already published as" in capsys.readouterr().out
    assert trainpilot(["comfy", "publish", "nope", "--workspace", str(comfy_ws.root)]) == 2
    assert "no job has the id or name 'nope'" in capsys.readouterr().err
