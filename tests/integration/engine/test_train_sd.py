"""A short run on each SD-family tiny model writes a LoRA that diffusers loads and that does something."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from safetensors import safe_open

from lorapilot.engine import train

PROMPT = "lpdemo, a red circle"
TE_MODULES = (
    "self_attn_q_proj",
    "self_attn_k_proj",
    "self_attn_v_proj",
    "self_attn_out_proj",
    "mlp_fc1",
    "mlp_fc2",
)


def render(pipe: DiffusionPipeline) -> np.ndarray:
    generator = torch.Generator().manual_seed(7)
    return pipe(
        PROMPT, num_inference_steps=2, width=64, height=64, generator=generator, output_type="np"
    ).images[0]


def read_lora(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()  # noqa: SIM118


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_lora_loads_in_diffusers_changes_the_image_and_scale_zero_restores_it(family, make_spec, workspace):
    spec = make_spec(family, name=f"t-{family}", network={"dim": 4, "alpha": 2})
    result = train(spec, workspace, show_progress=False)
    assert result.steps == 30 and result.lora.is_file()
    assert oct(result.lora.stat().st_mode & 0o777) == "0o644"

    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / f"tiny-{family}")
    pipe.set_progress_bar_config(disable=True)
    base = render(pipe)
    pipe.load_lora_weights(str(result.lora), adapter_name="trained")
    assert "trained" in {name for names in pipe.get_list_adapters().values() for name in names}
    with_lora = render(pipe)
    assert np.abs(with_lora - base).mean() > 1e-3, "the LoRA did not change the image"
    pipe.set_adapters(["trained"], adapter_weights=[0.0])
    assert np.abs(render(pipe) - base).max() < 1e-4, "LoRA scale 0 did not give back the base image"


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_kohya_keys_cover_every_trained_module_and_metadata_is_the_runs(family, make_spec, workspace):
    spec = make_spec(
        family,
        name=f"k-{family}",
        network={"dim": 4, "alpha": 2, "train_text_encoder": True},
        training={
            "max_steps": 6,
            "seed": 123,
            "noise_offset": 0.05,
            "min_snr_gamma": 5.0,
            "lr_scheduler": "cosine",
            "warmup_steps": 2,
            "text_encoder_lr": 5e-4,
        },
    )
    result = train(spec, workspace, show_progress=False)
    tensors, meta = read_lora(result.lora)
    unet = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / f"tiny-{family}").unet
    expected_unet = sum(
        1 for n, _ in unet.named_modules() if n.endswith(("to_q", "to_k", "to_v", "to_out.0"))
    )
    downs = [k for k in tensors if k.endswith(".lora_down.weight")]
    assert sum(k.startswith("lora_unet_") for k in downs) == expected_unet
    pipe = DiffusionPipeline.from_pretrained(workspace.model_dir("diffusers") / f"tiny-{family}")
    encoders = {"lora_te": pipe.text_encoder} if family == "sd15" else {}
    if family == "sdxl":
        encoders = {"lora_te1": pipe.text_encoder, "lora_te2": pipe.text_encoder_2}
    for prefix, encoder in encoders.items():  # kohya's targets: attention and MLP of every CLIP layer
        expected_te = {
            f"{prefix}_text_model_encoder_layers_{n}_{module}.lora_down.weight"
            for n in range(encoder.config.num_hidden_layers)
            for module in TE_MODULES
        }
        assert {k for k in downs if k.startswith(f"{prefix}_")} == expected_te
    assert all(k.startswith(("lora_unet_", "lora_te")) for k in tensors)
    pipe.load_lora_weights(str(result.lora), adapter_name="kohya")  # diffusers' own kohya converter
    for encoder in encoders.values():  # the MLP layers took the LoRA, not just the attention ones
        mlp = [m for n, m in encoder.named_modules() if n.endswith(("mlp.fc1", "mlp.fc2"))]
        assert len(mlp) == 2 * encoder.config.num_hidden_layers
        assert all("kohya" in m.lora_A for m in mlp)
    alphas = {k: float(v) for k, v in tensors.items() if k.endswith(".alpha")}
    assert len(alphas) == len(downs) and set(alphas.values()) == {2.0}

    assert meta["ss_network_module"] == "networks.lora"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2.0")
    assert meta["ss_base_model_version"] == ("sd_v1" if family == "sd15" else "sdxl_base_v1-0")
    assert (meta["ss_steps"], meta["ss_max_train_steps"], meta["ss_seed"]) == ("6", "6", "123")
    assert (meta["ss_learning_rate"], meta["ss_text_encoder_lr"]) == ("0.001", "0.0005")
    assert (meta["ss_lr_scheduler"], meta["ss_lr_warmup_steps"]) == ("cosine", "2")
    assert meta["ss_optimizer"] == "torch.optim.AdamW"
    assert (meta["ss_noise_offset"], meta["ss_min_snr_gamma"], meta["ss_mixed_precision"]) == (
        "0.05",
        "5.0",
        "no",
    )
    assert meta["ss_resolution"] == "(64, 64)"
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_demo": {"n_repeats": 2, "img_count": 6}}
    assert json.loads(meta["ss_tag_frequency"])["2_demo"]["lpdemo"] == 6
    assert meta["ss_num_train_images"] == "12"
    assert float(meta["ss_training_finished_at"]) >= float(meta["ss_training_started_at"]) > 0
    assert len(meta["ss_session_id"]) == 32 and len(meta["sshs_model_hash"]) == 64
    assert meta["ss_output_name"] == f"k-{family}"
