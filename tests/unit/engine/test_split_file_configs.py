"""The configs read off split files' tensor shapes are the released models' configs.

Each released architecture is built on the meta device (no memory), written in its original key
layout, and its config read back from the shapes alone.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

from lorapilot.engine.families.bfl_layout import flux_config, flux_from_diffusers
from lorapilot.engine.families.sd3 import mmdit_config
from lorapilot.testing.split_files import sd3_to_stability

FLUX_RELEASED = {  # black-forest-labs/FLUX.1-dev transformer/config.json (schnell: no guidance)
    "patch_size": 1,
    "in_channels": 64,
    "out_channels": 64,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "axes_dims_rope": (16, 56, 56),
}
SD3_MEDIUM = {  # stabilityai/stable-diffusion-3-medium-diffusers transformer/config.json
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 192,
    "dual_attention_layers": (),
    "qk_norm": None,
}
SD35_LARGE = {**SD3_MEDIUM, "num_layers": 38, "num_attention_heads": 38, "caption_projection_dim": 2432}
SD35_LARGE["qk_norm"] = "rms_norm"
SD35_MEDIUM = {**SD3_MEDIUM, "pos_embed_max_size": 384, "qk_norm": "rms_norm"}
SD35_MEDIUM["dual_attention_layers"] = tuple(range(13))


@pytest.mark.parametrize("guidance", [True, False], ids=["dev", "schnell"])
def test_a_released_flux_transformer_file_gives_the_released_config(guidance):
    released = {**FLUX_RELEASED, "guidance_embeds": guidance}
    with torch.device("meta"):
        model = FluxTransformer2DModel(**released)
    assert flux_config(flux_from_diffusers(model.state_dict())) == released


@pytest.mark.parametrize(
    "released", [SD3_MEDIUM, SD35_LARGE, SD35_MEDIUM], ids=["sd3", "sd35-large", "sd35-medium"]
)
def test_a_released_sd3_file_gives_the_released_config(released):
    with torch.device("meta"):
        model = SD3Transformer2DModel(**released)
    state = sd3_to_stability(model.state_dict(), dict(model.config))
    assert mmdit_config(state) == released
