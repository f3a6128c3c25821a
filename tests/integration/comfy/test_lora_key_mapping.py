"""Every key of an SD1.5/SDXL LoRA file LoRA Pilot writes lands on the full-size model in ComfyUI.

Issue 9, acceptance 4. The full-size models (released configs, inline below) are built on the meta
device, LoRA goes in through the real `inject` with the family's real sites, and the file is written
by the real `save_lora` (kohya layout). ComfyUI's key rules are encoded in
`lorapilot.testing.comfyui_lora_keys` from Comfy-Org/ComfyUI `comfy/lora.py`
(`model_lora_keys_unet`, `model_lora_keys_clip`, `LORA_CLIP_MAP`) and `comfy/utils.py`
(`unet_to_diffusers` with `UNET_MAP_ATTENTIONS`, `TRANSFORMER_BLOCKS`, `UNET_MAP_RESNET`,
`UNET_MAP_BASIC`); the commits read are named there. The rule checked:

  UNet:  stem = `lora_unet_` + module name with `.` → `_`, the module name being either the diffusers
         name (resolved to the LDM weight through `unet_to_diffusers`) or the LDM name itself;
  CLIP:  stem = `lora_te_` (SD1.5) / `lora_te1_`, `lora_te2_` (SDXL CLIP-L, CLIP-G) +
         `text_model_encoder_layers_<i>_<LORA_CLIP_MAP name>`;

and the stem counts only when the weight it names exists in ComfyUI's model (`ModelPatcher.add_patches`
skips the rest, `load_lora_for_models` logs them as `NOT LOADED`).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from lorapilot.engine.families import LoadedModel, ModelFacts, adapter_for
from lorapilot.engine.families.reference_configs import MODELS, SD15_REFERENCE, SDXL_REFERENCE
from lorapilot.engine.lora import inject
from lorapilot.engine.lora_export import LoraComponent
from lorapilot.engine.saving import LoraFileSpec, save_lora
from lorapilot.spec.model import NetworkSpec
from lorapilot.testing import comfyui_lora_keys as comfy
from lorapilot.testing.ldm_checkpoint import unet_to_ldm

# The released models' configs (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-base-1.0),
# as the engine keeps them for single-file checkpoints.
RELEASED = {"sd15": MODELS[SD15_REFERENCE], "sdxl": MODELS[SDXL_REFERENCE]}
# family component → (kohya prefix, ComfyUI text-encoder attribute), see comfyui_lora_keys
TEXT_ENCODERS = {
    "sd15": {"text_encoder": ("lora_te", "clip_l")},
    "sdxl": {"text_encoder": ("lora_te1", "clip_l"), "text_encoder_2": ("lora_te2", "clip_g")},
}

# LoRA modules the full-size architectures have for each target group, counted from the configs:
# attention: 4 projections (to_q/to_k/to_v/to_out.0) × 2 attentions × transformer blocks, i.e.
#   SD1.5: (3 levels × 2 down + 1 mid + 3 levels × 3 up) = 16 blocks; SDXL: 1×2×2 + 2×10 down,
#   10 mid, 3×10 + 3×2 up = 70 blocks.
# conv (LoCon): conv1 + conv2 of every resnet, conv_shortcut where channels change, the down/up
#   samplers. SD1.5: 22 resnets → 44, 2 + 12 shortcuts, 3 + 3 samplers = 64.
#   SDXL: 17 resnets → 34, 2 + 9 shortcuts, 2 + 2 samplers = 49.
# text encoder: q/k/v/out_proj + mlp fc1/fc2 (kohya's targets) × layers. CLIP-L 12 → 72, CLIP-G 32 → 192.
EXPECTED = {
    "sd15": {"attention": 16 * 8, "conv": 64, "lora_te": 12 * 6},
    "sdxl": {"attention": 70 * 8, "conv": 49, "lora_te1": 12 * 6, "lora_te2": 32 * 6},
}
KOHYA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha", ".dora_scale")


def full_size_components(family: str) -> dict[str, torch.nn.Module]:
    """UNet and text encoder(s) of the released model, parameters on the meta device (no memory)."""
    with torch.device("meta"):
        components = {
            "unet": UNet2DConditionModel.from_config(RELEASED[family]["unet"]),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_dict(RELEASED[family]["text_encoder"])),
        }
        if family == "sdxl":
            config = CLIPTextConfig.from_dict(RELEASED[family]["text_encoder_2"])
            components["text_encoder_2"] = CLIPTextModelWithProjection(config)
    return components


def materialize_lora_layers(module: torch.nn.Module) -> int:
    """Give the (small) LoRA matrices real CPU storage so the exporter can copy them; base stays meta."""
    count = 0
    for layer in module.modules():
        if isinstance(layer, LoraLayer):
            for part in (layer.lora_A, layer.lora_B, layer.lora_magnitude_vector):
                part.to_empty(device="cpu")
                for param in part.parameters():
                    torch.nn.init.normal_(param.data, std=0.01)
            count += 1
    return count


def comfy_target_to_param(family: str, unet_params: dict[str, str]) -> dict[str, str]:
    """ComfyUI model key → the full-size (transformers/diffusers) parameter it is, for shape checks.

    UNet: the inverse of the diffusers → LDM map. CLIP: ComfyUI's `<clip>.transformer.text_model.…`
    is transformers' CLIPTextModel naming (`comfy/clip_model.py` mirrors it); transformers 5 dropped
    the `text_model` level from CLIPTextModel but not from CLIPTextModelWithProjection.
    """
    out = {ldm: name for name, ldm in unet_params.items()}
    for component, (_, clip) in TEXT_ENCODERS[family].items():
        for layer in range(comfy.CLIP_LAYERS[clip]):
            for module in comfy.LORA_CLIP_MAP:
                path = f"text_model.encoder.layers.{layer}.{module}.weight"
                out[f"{clip}.transformer.{path}"] = f"{component}:{path}"
    return out


def stem_of(key: str) -> str:
    for suffix in KOHYA_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    raise AssertionError(f"{key}: not a kohya LoRA tensor name (expected one of {KOHYA_SUFFIXES})")


def describe(stems: set[str], limit: int = 25) -> str:
    listed = "\n  ".join(sorted(stems)[:limit])
    more = f"\n  … and {len(stems) - limit} more" if len(stems) > limit else ""
    return f"{len(stems)} key(s) ComfyUI would log as not loaded:\n  {listed}{more}"


@dataclass(frozen=True)
class ComfyModel:
    """ComfyUI's view of a family's full-size model: its weights and the LoRA stems it loads."""

    unet_params: dict[str, str]  # diffusers parameter → ComfyUI key `diffusion_model.<LDM name>`
    unet_shapes: dict[str, tuple[int, ...]]  # diffusers parameter → shape
    key_map: dict[str, str]  # model_lora_keys_unet + model_lora_keys_clip: stem → model key
    accepted: dict[str, str]  # the stems whose model key exists: what add_patches applies


@functools.cache
def comfy_model(family: str) -> ComfyModel:
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(RELEASED[family]["unet"])
    state = unet.state_dict()
    unet_config = comfy.UNET_CONFIGS[family]
    unet_params = comfy.ldm_unet_state_keys(state, unet_config)
    unnamed = set(state) - set(unet_params)
    assert not unnamed, f"unet_to_diffusers leaves diffusers parameters without an LDM name: {unnamed}"
    assert len(set(unet_params.values())) == len(unet_params)  # one LDM weight per diffusers weight
    # The LDM names agree with the independent converter that writes LDM single-file checkpoints.
    ldm_layout = set(unet_to_ldm(state, RELEASED[family]["unet"]))
    assert {key.removeprefix("diffusion_model.") for key in unet_params.values()} == ldm_layout

    clip_keys = comfy.comfy_clip_state_keys(family)
    key_map = comfy.model_lora_keys_unet(unet_params.values(), unet_config)
    key_map |= comfy.model_lora_keys_clip(clip_keys)
    accepted = comfy.accepted_stems(key_map, set(unet_params.values()) | clip_keys)
    shapes = {name: tuple(param.shape) for name, param in state.items()}
    return ComfyModel(unet_params, shapes, key_map, accepted)


NETWORKS = {
    "unet-default": NetworkSpec(dim=4),
    "unet+te+locon": NetworkSpec(dim=4, alpha=2, train_text_encoder=True, conv_dim=2, conv_alpha=1),
    "unet+te-dora": NetworkSpec(dim=2, train_text_encoder=True, dora=True),
}


# DoRA only adds `<stem>.dora_scale` beside the same stems; once (SD1.5) is enough, SDXL's costs 6 s.
CASES = [(f, n) for f in ("sd15", "sdxl") for n in NETWORKS if (f, n) != ("sdxl", "unet+te-dora")]


@pytest.mark.parametrize(("family_name", "network_name"), CASES)
def test_every_exported_key_maps_onto_the_full_size_model_in_comfyui(
    family_name: str, network_name: str, tmp_path: Path
):
    network = NETWORKS[network_name]
    target = comfy_model(family_name)
    components = full_size_components(family_name)
    assert {name: tuple(p.shape) for name, p in components["unet"].state_dict().items()} == target.unet_shapes
    te_shapes = {}
    for component, (_, clip) in TEXT_ENCODERS[family_name].items():
        encoder = components[component]
        assert encoder.config.num_hidden_layers == comfy.CLIP_LAYERS[clip]
        for name, param in encoder.state_dict().items():  # transformers 5 CLIPTextModel: no text_model.
            te_shapes[f"{component}:{name if name.startswith('text_model.') else 'text_model.' + name}"] = (
                tuple(param.shape)
            )

    # LoRA Pilot's own injection and file writing, as a training run does them (run_setup, trainer).
    family = adapter_for(family_name)
    model = LoadedModel(components, family.pipeline_class, ModelFacts("epsilon", family.family.kohya))
    sites = inject(model, family.lora_sites(network.train_text_encoder), network, family.denoiser_name)
    injected = sum(materialize_lora_layers(site.module) for site in sites)
    path = tmp_path / "lora.safetensors"
    save_lora(
        path,
        [LoraComponent(s.site.name, s.site.kohya_prefix, s.module) for s in sites],
        {"ss_network_dim": str(network.dim)},
        LoraFileSpec(family.lora_file_format("kohya"), "fp16"),
    )
    with safe_open(str(path), "pt") as handle:
        keys = set(handle.keys())
        stems = {stem_of(key) for key in keys}

        # 1. Every stem is one ComfyUI reads and patches onto a weight of the full-size model.
        unmatched = stems - target.accepted.keys()
        assert not unmatched, describe(unmatched)

        # 2. Not vacuous: every injected layer is in the file, as many as the architecture has.
        expected = EXPECTED[family_name]
        want = {"lora_unet": expected["attention"] + (expected["conv"] if network.conv_dim else 0)}
        if network.train_text_encoder:
            want |= {prefix: expected[prefix] for prefix, _ in TEXT_ENCODERS[family_name].values()}
        by_prefix = Counter(
            stem.split("_text_model_")[0] if "_text_model_" in stem else "lora_unet" for stem in stems
        )
        assert dict(by_prefix) == want
        assert len(stems) == injected == sum(want.values())
        for stem in stems:
            assert {f"{stem}.lora_down.weight", f"{stem}.lora_up.weight", f"{stem}.alpha"} <= keys
            assert (f"{stem}.dora_scale" in keys) == network.dora

        # 3. Each stem lands on a weight of its own, and the LoRA's shape fits that weight:
        #    down (rank, in, *kernel), up (out, rank, 1, …), ComfyUI's delta up @ down has its shape.
        weights = {stem: target.accepted[stem] for stem in stems}
        assert len(set(weights.values())) == len(stems)
        params = comfy_target_to_param(family_name, target.unet_params)
        shapes = {**target.unet_shapes, **te_shapes}
        for stem, weight_key in weights.items():
            weight = shapes[params[weight_key]]
            down = tuple(handle.get_slice(f"{stem}.lora_down.weight").get_shape())
            up = tuple(handle.get_slice(f"{stem}.lora_up.weight").get_shape())
            fits = (up[0], *down[1:]) == weight and up[1] == down[0] and all(d == 1 for d in up[2:])
            assert fits, f"{stem} → {weight_key}: up {up} @ down {down} does not fit {weight}"


@pytest.mark.parametrize("family_name", ["sd15", "sdxl"])
def test_the_encoded_comfyui_rules_reject_what_comfyui_rejects(family_name: str):
    """Negative controls: keys ComfyUI would not load are not accepted by the encoded rules."""
    target = comfy_model(family_name)
    key_map, accepted = target.key_map, target.accepted

    attn = "attentions_0_transformer_blocks_0_attn1_to_q"
    assert f"lora_unet_down_blocks_1_{attn}" in accepted
    assert f"lora_unet_down_blocks_9_{attn}" not in key_map  # no such block
    assert f"lora_unet_down_blocks_1_{attn}_lora" not in key_map  # wrong spelling
    assert "lora_te1_encoder_layers_0_self_attn_q_proj" not in key_map  # CLIP-L without `text_model`
    assert "lora_te3_text_model_encoder_layers_0_self_attn_q_proj" not in key_map  # no third encoder
    # peft names are not ComfyUI's for SD attention (it knows only `processor.to_q`): FORMATS.md §1
    assert "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q" not in key_map
    # unet_to_diffusers names a downsampler after the last down block; the model has no such weight
    last = len(comfy.UNET_CONFIGS[family_name]["channel_mult"]) - 1
    assert f"lora_unet_down_blocks_{last}_downsamplers_0_conv" in key_map
    assert f"lora_unet_down_blocks_{last}_downsamplers_0_conv" not in accepted

    if family_name == "sd15":
        assert "lora_te_text_model_encoder_layers_11_self_attn_q_proj" in accepted
        assert "lora_te_text_model_encoder_layers_12_self_attn_q_proj" not in key_map  # CLIP-L has 12
        assert not any(stem.startswith("lora_te2_") for stem in key_map)
    else:
        assert "lora_te2_text_model_encoder_layers_31_self_attn_q_proj" in accepted
        assert "lora_te1_text_model_encoder_layers_12_self_attn_q_proj" not in key_map
        assert "lora_te2_text_model_encoder_layers_32_self_attn_q_proj" not in key_map


@pytest.mark.parametrize(
    ("family_name", "diffusers", "ldm"),
    [
        # input_blocks.4 is level 1's first resnet (1 + (2 + 1) × 1); its attention is slot 1
        (
            "sd15",
            "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k",
            "input_blocks.4.1.transformer_blocks.0.attn2.to_k",
        ),
        ("sd15", "down_blocks.2.downsamplers.0.conv", "input_blocks.9.0.op"),
        ("sd15", "mid_block.resnets.1.conv2", "middle_block.2.out_layers.3"),
        ("sd15", "up_blocks.0.upsamplers.0.conv", "output_blocks.2.1.conv"),  # no attention: slot 1
        ("sd15", "up_blocks.3.resnets.2.conv_shortcut", "output_blocks.11.0.skip_connection"),
        (
            "sdxl",
            "down_blocks.2.attentions.1.transformer_blocks.9.attn1.to_out.0",
            "input_blocks.8.1.transformer_blocks.9.attn1.to_out.0",
        ),
        (
            "sdxl",
            "mid_block.attentions.0.transformer_blocks.9.attn2.to_v",
            "middle_block.1.transformer_blocks.9.attn2.to_v",
        ),
        ("sdxl", "up_blocks.0.upsamplers.0.conv", "output_blocks.2.2.conv"),  # after the attention: slot 2
        (
            "sdxl",
            "up_blocks.1.attentions.2.transformer_blocks.1.attn1.to_q",
            "output_blocks.5.1.transformer_blocks.1.attn1.to_q",
        ),
    ],
)
def test_diffusers_and_ldm_names_reach_the_same_weight(family_name: str, diffusers: str, ldm: str):
    """Both `lora_unet_` rules of `model_lora_keys_unet` resolve to one LDM weight (the block mapping)."""
    target = comfy_model(family_name)
    weight = f"diffusion_model.{ldm}.weight"
    assert target.unet_params[f"{diffusers}.weight"] == weight
    assert target.accepted[f"lora_unet_{diffusers.replace('.', '_')}"] == weight
    assert target.accepted[f"lora_unet_{ldm.replace('.', '_')}"] == weight
