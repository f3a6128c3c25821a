"""`trainpilot validate` checks model.assistant_lora: the file is there and holds LoRA layers."""

from __future__ import annotations

import numpy as np
from safetensors.numpy import save_file

CONFIG = """spec_version: 1
model:
  family: flux-schnell
  path: /workspace/models/diffusers/FLUX.1-schnell
  assistant_lora: {assistant}
datasets: [{{folder: my_dataset}}]
output: {{name: assisted}}
"""


def write(tmp_path, assistant: str):
    path = tmp_path / "assisted.yaml"
    path.write_text(CONFIG.format(assistant=assistant))
    return path


def test_a_missing_assistant_lora_is_an_error_naming_the_field(validate, guide_workspace, tmp_path):
    result = validate(write(tmp_path, "/workspace/models/loras/nope.safetensors"), workspace=guide_workspace)
    assert result.rc == 2
    assert "model.assistant_lora: LoRA file not found" in result.err
    assert "/workspace/models/loras/" in result.err


def test_a_file_without_lora_layers_is_refused(validate, guide_workspace, tmp_path):
    loras = guide_workspace.model_dir("loras")
    loras.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, str(loras / "not-a-lora.safetensors"))
    (loras / "broken.safetensors").write_bytes(b"\x00" * 4)
    for name, problem in (("not-a-lora", "holds no LoRA layers"), ("broken", "unreadable")):
        result = validate(
            write(tmp_path, f"/workspace/models/loras/{name}.safetensors"), workspace=guide_workspace
        )
        assert result.rc == 2 and f"model.assistant_lora: {problem}" in result.err, result.err


def test_a_lora_file_or_a_hub_id_passes(validate, guide_workspace, tmp_path):
    loras = guide_workspace.model_dir("loras")
    loras.mkdir(parents=True, exist_ok=True)
    tensors = {"transformer.x.lora_A.weight": np.zeros((2, 4), np.float32)}
    save_file(tensors, str(loras / "adapter.safetensors"))
    spec = validate(
        write(tmp_path, "/workspace/models/loras/adapter.safetensors"), workspace=guide_workspace
    ).spec
    assert spec["model"]["assistant_lora"] == str(loras / "adapter.safetensors")
    hub = "ostris/FLUX.1-schnell-training-adapter"
    assert validate(write(tmp_path, hub), workspace=guide_workspace).spec["model"]["assistant_lora"] == hub
