"""An `/object_info` document for the node classes LoRA Pilot's workflows use, transcribed from
ComfyUI's published node definitions (Comfy-Org/ComfyUI `nodes.py`: CheckpointLoaderSimple,
LoraLoader, LoraLoaderModelOnly, CLIPTextEncode, EmptyLatentImage, KSampler, VAEDecode, SaveImage,
UNETLoader, DualCLIPLoader, TripleCLIPLoader, VAELoader, LoadImage; `comfy_extras/nodes_flux.py`:
FluxGuidance; `comfy_extras/nodes_sd3.py`: EmptySD3LatentImage). ComfyUI itself is not installable
from the package registries, so the tests check workflows against this document instead.
Lists of files are filled in from the model folders, as ComfyUI's `folder_paths` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]
WEIGHT_DTYPES = ["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]
DUAL_CLIP_TYPES = ["sdxl", "sd3", "flux", "hunyuan_video", "hidream"]
MAX_RESOLUTION = 16384


def _int(default: int, lo: int, hi: int, step: int = 1) -> list:
    return ["INT", {"default": default, "min": lo, "max": hi, "step": step}]


def _float(default: float, lo: float, hi: float, step: float = 0.01) -> list:
    return ["FLOAT", {"default": default, "min": lo, "max": hi, "step": step}]


def _files(models: Path, folder: str) -> list[str]:
    base = models / folder
    if not base.is_dir():
        return []
    return sorted(
        str(p.relative_to(base))
        for p in base.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix in (".safetensors", ".ckpt", ".pt", ".sft")
    )


def _node(
    required: dict,
    output: list[str],
    category: str,
    *,
    optional: dict | None = None,
    output_node: bool = False,
    hidden: dict | None = None,
) -> dict[str, Any]:
    inputs: dict[str, Any] = {"required": required}
    if optional:
        inputs["optional"] = optional
    if hidden:
        inputs["hidden"] = hidden
    return {
        "input": inputs,
        "input_order": {key: list(value) for key, value in inputs.items()},
        "output": output,
        "output_is_list": [False] * len(output),
        "output_name": output,
        "category": category,
        "output_node": output_node,
    }


def object_info(models: Path, inputs: Path | None = None) -> dict[str, dict[str, Any]]:
    ckpts, loras = _files(models, "checkpoints"), _files(models, "loras")
    unets = _files(models, "diffusion_models") + _files(models, "unet")
    clips = _files(models, "text_encoders") + _files(models, "clip")
    vaes = _files(models, "vae")
    lora = _float(1.0, -100.0, 100.0)
    images = sorted(p.name for p in inputs.iterdir() if p.is_file()) if inputs and inputs.is_dir() else []
    return {
        "CheckpointLoaderSimple": _node({"ckpt_name": [ckpts]}, ["MODEL", "CLIP", "VAE"], "loaders"),
        "LoraLoader": _node(
            {
                "model": ["MODEL"],
                "clip": ["CLIP"],
                "lora_name": [loras],
                "strength_model": lora,
                "strength_clip": lora,
            },
            ["MODEL", "CLIP"],
            "loaders",
        ),
        "LoraLoaderModelOnly": _node(
            {"model": ["MODEL"], "lora_name": [loras], "strength_model": lora}, ["MODEL"], "loaders"
        ),
        "CLIPTextEncode": _node(
            {"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]},
            ["CONDITIONING"],
            "conditioning",
        ),
        "EmptyLatentImage": _node(
            {
                "width": _int(512, 16, MAX_RESOLUTION, 8),
                "height": _int(512, 16, MAX_RESOLUTION, 8),
                "batch_size": _int(1, 1, 4096),
            },
            ["LATENT"],
            "latent",
        ),
        "EmptySD3LatentImage": _node(
            {
                "width": _int(1024, 16, MAX_RESOLUTION, 16),
                "height": _int(1024, 16, MAX_RESOLUTION, 16),
                "batch_size": _int(1, 1, 4096),
            },
            ["LATENT"],
            "latent/sd3",
        ),
        "KSampler": _node(
            {
                "model": ["MODEL"],
                "seed": _int(0, 0, 0xFFFFFFFFFFFFFFFF),
                "steps": _int(20, 1, 10000),
                "cfg": _float(8.0, 0.0, 100.0, 0.1),
                "sampler_name": [SAMPLERS],
                "scheduler": [SCHEDULERS],
                "positive": ["CONDITIONING"],
                "negative": ["CONDITIONING"],
                "latent_image": ["LATENT"],
                "denoise": _float(1.0, 0.0, 1.0),
            },
            ["LATENT"],
            "sampling",
        ),
        "VAEDecode": _node({"samples": ["LATENT"], "vae": ["VAE"]}, ["IMAGE"], "latent"),
        "SaveImage": _node(
            {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
            [],
            "image",
            output_node=True,
            hidden={"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        ),
        "LoadImage": _node({"image": [images, {"image_upload": True}]}, ["IMAGE", "MASK"], "image"),
        "UNETLoader": _node(
            {"unet_name": [unets], "weight_dtype": [WEIGHT_DTYPES]}, ["MODEL"], "advanced/loaders"
        ),
        "DualCLIPLoader": _node(
            {"clip_name1": [clips], "clip_name2": [clips], "type": [DUAL_CLIP_TYPES]},
            ["CLIP"],
            "advanced/loaders",
            optional={"device": [["default", "cpu"], {"advanced": True}]},
        ),
        "TripleCLIPLoader": _node(
            {"clip_name1": [clips], "clip_name2": [clips], "clip_name3": [clips]},
            ["CLIP"],
            "advanced/loaders",
        ),
        "VAELoader": _node({"vae_name": [vaes]}, ["VAE"], "loaders"),
        "FluxGuidance": _node(
            {"conditioning": ["CONDITIONING"], "guidance": _float(3.5, 0.0, 100.0, 0.1)},
            ["CONDITIONING"],
            "advanced/conditioning/flux",
        ),
    }
