"""Component configs of the released SD1.5, SD2.x and SDXL models, for single-file checkpoints.

A `.safetensors` checkpoint holds weights only; diffusers needs each component's config and the
tokenizer to build the pipeline around them, and would fetch them from the hub. These are the
published configs (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-2-1[-base],
stabilityai/stable-diffusion-xl-base-1.0), reduced to the keys that differ from diffusers'
defaults; the CLIP tokenizer is rebuilt from the BPE merges that the `clip-anytorch` package ships.
`materialize()` writes them as a diffusers folder without weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lorapilot.engine.families.clip_vocab import write_clip_tokenizer

_SCALED_LINEAR = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "clip_sample": False,
}
_VAE = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
}
_CLIP_L = {
    "architectures": ["CLIPTextModel"],
    "model_type": "clip_text_model",
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "projection_dim": 768,
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
_OPEN_CLIP_H = {
    **_CLIP_L,
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "projection_dim": 512,
}
_OPEN_CLIP_BIGG = {
    **_CLIP_L,
    "architectures": ["CLIPTextModelWithProjection"],
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
}
_SD_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

SD15_REFERENCE = "stable-diffusion-v1-5"
SD21_BASE_REFERENCE = "stable-diffusion-2-1-base"  # 512 px, epsilon
SD21_REFERENCE = "stable-diffusion-2-1"  # 768 px, v-prediction, attention upcast
SDXL_REFERENCE = "stable-diffusion-xl-base-1.0"

MODELS: dict[str, dict[str, Any]] = {
    SD15_REFERENCE: {
        "model_index": {
            "_class_name": "StableDiffusionPipeline",
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "scheduler": ["diffusers", "PNDMScheduler"],
            "safety_checker": [None, None],
            "feature_extractor": [None, None],
        },
        "unet": {**_SD_UNET, "attention_head_dim": 8, "cross_attention_dim": 768, "sample_size": 64},
        "vae": {**_VAE, "sample_size": 512, "scaling_factor": 0.18215},
        "text_encoder": _CLIP_L,
        "scheduler": {
            "_class_name": "PNDMScheduler",
            **_SCALED_LINEAR,
            "skip_prk_steps": True,
            "set_alpha_to_one": False,
            "prediction_type": "epsilon",
        },
        "tokenizers": {"tokenizer": "<|endoftext|>"},
    },
    SDXL_REFERENCE: {
        "model_index": {
            "_class_name": "StableDiffusionXLPipeline",
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        },
        "unet": {
            **_SD_UNET,
            "block_out_channels": [320, 640, 1280],
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "attention_head_dim": [5, 10, 20],
            "transformer_layers_per_block": [1, 2, 10],
            "cross_attention_dim": 2048,
            "use_linear_projection": True,
            "addition_embed_type": "text_time",
            "addition_embed_type_num_heads": 64,
            "addition_time_embed_dim": 256,
            "projection_class_embeddings_input_dim": 2816,
            "sample_size": 128,
        },
        "vae": {**_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True},
        "text_encoder": _CLIP_L,
        "text_encoder_2": _OPEN_CLIP_BIGG,
        "scheduler": {
            "_class_name": "EulerDiscreteScheduler",
            **_SCALED_LINEAR,
            "prediction_type": "epsilon",
            "timestep_spacing": "leading",
            "interpolation_type": "linear",
        },
        "tokenizers": {"tokenizer": "<|endoftext|>", "tokenizer_2": "!"},
    },
}
_SD2_UNET = {
    **_SD_UNET,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
}
MODELS[SD21_BASE_REFERENCE] = {
    **MODELS[SD15_REFERENCE],
    "unet": {**_SD2_UNET, "sample_size": 64},
    "text_encoder": _OPEN_CLIP_H,
    "scheduler": {
        "_class_name": "PNDMScheduler",
        **_SCALED_LINEAR,
        "skip_prk_steps": True,
        "set_alpha_to_one": False,
        "prediction_type": "epsilon",
    },
    "tokenizers": {"tokenizer": "!"},
}
MODELS[SD21_REFERENCE] = {
    **MODELS[SD21_BASE_REFERENCE],
    "unet": {**_SD2_UNET, "sample_size": 96, "upcast_attention": True},
    "scheduler": {**MODELS[SD21_BASE_REFERENCE]["scheduler"], "prediction_type": "v_prediction"},
}


def materialize(name: str, dest: Path) -> Path:
    """Write the weightless diffusers folder of reference model `name` to `dest` (idempotent)."""
    model = MODELS[name]
    marker = dest / ".complete"
    if marker.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    _write(dest / "model_index.json", model["model_index"])
    _write(dest / "scheduler" / "scheduler_config.json", model["scheduler"])
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if component in model:
            _write(dest / component / "config.json", model[component])
    for tokenizer, pad in model["tokenizers"].items():
        write_clip_tokenizer(dest / tokenizer, pad_token=pad)
    marker.write_text("ok\n")
    return dest


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
