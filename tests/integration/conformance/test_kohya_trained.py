"""What an sd-scripts config trains here is what sd-scripts would train: a text-encoder LoRA beside
the U-Net's unless `network_train_unet_only` is set (both CLIP encoders on SDXL)."""

from __future__ import annotations

import json
import re

import pytest
from safetensors import safe_open

from lorapilot.engine import train
from lorapilot.spec.loader import load_spec
from lorapilot.workspace import Workspace

CONFIG = """
pretrained_model_name_or_path = "/workspace/models/diffusers/tiny-{family}"
train_data_dir = "/workspace/datasets/images/person"
output_dir = "/workspace/outputs/{name}"
output_name = "{name}"
resolution = "64,64"
caption_extension = ".txt"
network_module = "networks.lora"
network_dim = 4
network_alpha = 4
optimizer_type = "AdamW"
learning_rate = 1e-3
max_train_steps = 1
mixed_precision = "no"
{extra}
"""
# Text encoder folder → kohya key prefix, per family.
ENCODERS = {
    "sd15": {"text_encoder": "lora_te"},
    "sdxl": {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"},
}
# sd-scripts' text-encoder targets: CLIPAttention and CLIPMLP of every layer.
MODULES = (
    "self_attn_q_proj",
    "self_attn_k_proj",
    "self_attn_v_proj",
    "self_attn_out_proj",
    "mlp_fc1",
    "mlp_fc2",
)


def _lora_keys(workspace: Workspace, family: str, name: str, extra: str = "") -> set[str]:
    config = workspace.root / f"{name}.toml"
    config.write_text(CONFIG.format(family=family, name=name, extra=extra))
    result = train(load_spec(config, workspace=workspace).spec, workspace, show_progress=False)
    with safe_open(str(result.lora), "pt") as handle:
        return set(handle.keys())


def _layers(workspace: Workspace, family: str, encoder: str) -> int:
    folder = workspace.model_dir("diffusers") / f"tiny-{family}" / encoder
    return json.loads((folder / "config.json").read_text())["num_hidden_layers"]


@pytest.mark.parametrize("family", sorted(ENCODERS))
def test_without_unet_only_every_clip_layers_attention_and_mlp_train(family, conformance_workspace):
    keys = _lora_keys(conformance_workspace, family, f"conf_kohya_te_{family}")
    assert any(k.startswith("lora_unet_") for k in keys)
    for encoder, prefix in ENCODERS[family].items():
        for layer in range(_layers(conformance_workspace, family, encoder)):
            for module in MODULES:
                stem = f"{prefix}_text_model_encoder_layers_{layer}_{module}"
                assert f"{stem}.lora_down.weight" in keys, stem


def test_network_train_unet_only_trains_no_text_encoder(conformance_workspace):
    keys = _lora_keys(conformance_workspace, "sd15", "conf_kohya_unet_only", "network_train_unet_only = true")
    assert keys and not [k for k in keys if re.match(r"lora_te\d?_", k)]
    assert all(k.startswith("lora_unet_") for k in keys)
