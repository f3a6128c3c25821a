"""ComfyUI's LoRA key rules for SD1.5 and SDXL, transcribed so tests can check exported files offline.

ComfyUI is not installable from the package registries, so its rules are copied here, function by
function, keeping its names and loop structure. Sources (Comfy-Org/ComfyUI, the versions read):

- `comfy/lora.py` @ 17358c8f73b581a0d22facc3c385822f09b8bfb1: `LORA_CLIP_MAP`,
  `model_lora_keys_unet`, `model_lora_keys_clip` (the key map: LoRA key stem → model weight),
  and `load_lora`, which looks up `<stem>.lora_up.weight` / `.lora_down.weight` / `.alpha` for each
  stem of the key map and logs `lora key not loaded: <key>` for every file key no stem claimed.
- `comfy/utils.py` @ 09708eae709a992a5684bed3595ce4d07e705b4e: `UNET_MAP_ATTENTIONS`,
  `TRANSFORMER_BLOCKS`, `UNET_MAP_RESNET`, `UNET_MAP_BASIC`, `unet_to_diffusers` (the diffusers →
  LDM block mapping).
- `comfy/model_detection.py` @ 0b61ce5baa9ea03d8484729b7eb00e77c6fca227:
  `unet_config_from_diffusers_unet` (the `SD15` and `SDXL` unet_configs below) and
  `detect_unet_config` (`transformer_depth_output` lists output blocks last to first, which is why
  `unet_to_diffusers` `pop()`s it).
- `comfy/model_patcher.py` @ 08d0e510f4e539a1db39072589817136ac6cfa7d: `ModelPatcher.add_patches`
  patches a key only `if key in model_sd`; `comfy/sd.py` `load_lora_for_models` logs
  `NOT LOADED <key>` for the rest. So a LoRA module takes effect only when its stem is in the key
  map AND the weight the map names exists in the model: `accepted_stems` checks both.
- ComfyUI's text-encoder modules (comfyanonymous/ComfyUI): `comfy/clip_model.py` @ 00728eb2
  (`CLIPTextModel.text_model` → `encoder.layers[i]` → `self_attn.{q,k,v,out}_proj`, `mlp.fc1/fc2`,
  plus `text_projection`), `comfy/sd1_clip.py` (`SD1ClipModel` stores its encoder as attribute
  `clip_l`, `SDClipModel` as `.transformer`), `comfy/sdxl_clip.py` (`SDXLClipModel.clip_l`,
  `.clip_g`), layer counts from `comfy/sd1_clip_config.json` (12) and `comfy/clip_config_bigg.json`
  (32).

Only what SD1.5/SDXL reach is transcribed; the other architectures' branches of
`model_lora_keys_unet` (SD3, FLUX, Cascade, …) are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lorapilot.families import SD15, SDXL

# -- comfy/utils.py -------------------------------------------------------------------------------

UNET_MAP_ATTENTIONS = {
    "proj_in.weight",
    "proj_in.bias",
    "proj_out.weight",
    "proj_out.bias",
    "norm.weight",
    "norm.bias",
}

TRANSFORMER_BLOCKS = {
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
    "norm3.weight",
    "norm3.bias",
    "attn1.to_q.weight",
    "attn1.to_k.weight",
    "attn1.to_v.weight",
    "attn1.to_out.0.weight",
    "attn1.to_out.0.bias",
    "attn2.to_q.weight",
    "attn2.to_k.weight",
    "attn2.to_v.weight",
    "attn2.to_out.0.weight",
    "attn2.to_out.0.bias",
    "ff.net.0.proj.weight",
    "ff.net.0.proj.bias",
    "ff.net.2.weight",
    "ff.net.2.bias",
}

UNET_MAP_RESNET = {
    "in_layers.2.weight": "conv1.weight",
    "in_layers.2.bias": "conv1.bias",
    "emb_layers.1.weight": "time_emb_proj.weight",
    "emb_layers.1.bias": "time_emb_proj.bias",
    "out_layers.3.weight": "conv2.weight",
    "out_layers.3.bias": "conv2.bias",
    "skip_connection.weight": "conv_shortcut.weight",
    "skip_connection.bias": "conv_shortcut.bias",
    "in_layers.0.weight": "norm1.weight",
    "in_layers.0.bias": "norm1.bias",
    "out_layers.0.weight": "norm2.weight",
    "out_layers.0.bias": "norm2.bias",
}

UNET_MAP_BASIC = {
    ("label_emb.0.0.weight", "class_embedding.linear_1.weight"),
    ("label_emb.0.0.bias", "class_embedding.linear_1.bias"),
    ("label_emb.0.2.weight", "class_embedding.linear_2.weight"),
    ("label_emb.0.2.bias", "class_embedding.linear_2.bias"),
    ("label_emb.0.0.weight", "add_embedding.linear_1.weight"),
    ("label_emb.0.0.bias", "add_embedding.linear_1.bias"),
    ("label_emb.0.2.weight", "add_embedding.linear_2.weight"),
    ("label_emb.0.2.bias", "add_embedding.linear_2.bias"),
    ("input_blocks.0.0.weight", "conv_in.weight"),
    ("input_blocks.0.0.bias", "conv_in.bias"),
    ("out.0.weight", "conv_norm_out.weight"),
    ("out.0.bias", "conv_norm_out.bias"),
    ("out.2.weight", "conv_out.weight"),
    ("out.2.bias", "conv_out.bias"),
    ("time_embed.0.weight", "time_embedding.linear_1.weight"),
    ("time_embed.0.bias", "time_embedding.linear_1.bias"),
    ("time_embed.2.weight", "time_embedding.linear_2.weight"),
    ("time_embed.2.bias", "time_embedding.linear_2.bias"),
}


def unet_to_diffusers(unet_config: dict[str, Any]) -> dict[str, str]:
    """diffusers UNet parameter name → LDM (`openaimodel.UNetModel`) parameter name.

    `comfy/utils.py` `unet_to_diffusers`, line for line (dict lookups written as `.items()`). Like
    the original it also names blocks the model may not have (a downsampler after the last down
    block); `accepted_stems` drops those.
    """
    if "num_res_blocks" not in unet_config:
        return {}
    num_res_blocks = unet_config["num_res_blocks"]
    channel_mult = unet_config["channel_mult"]
    transformer_depth = unet_config["transformer_depth"][:]
    transformer_depth_output = unet_config["transformer_depth_output"][:]
    num_blocks = len(channel_mult)

    transformers_mid = unet_config.get("transformer_depth_middle")

    diffusers_unet_map = {}
    for x in range(num_blocks):
        n = 1 + (num_res_blocks[x] + 1) * x
        for i in range(num_res_blocks[x]):
            for b, resnet_name in UNET_MAP_RESNET.items():
                diffusers_unet_map[f"down_blocks.{x}.resnets.{i}.{resnet_name}"] = f"input_blocks.{n}.0.{b}"
            num_transformers = transformer_depth.pop(0)
            if num_transformers > 0:
                for b in UNET_MAP_ATTENTIONS:
                    diffusers_unet_map[f"down_blocks.{x}.attentions.{i}.{b}"] = f"input_blocks.{n}.1.{b}"
                for t in range(num_transformers):
                    for b in TRANSFORMER_BLOCKS:
                        diffusers_unet_map[f"down_blocks.{x}.attentions.{i}.transformer_blocks.{t}.{b}"] = (
                            f"input_blocks.{n}.1.transformer_blocks.{t}.{b}"
                        )
            n += 1
        for k in ["weight", "bias"]:
            diffusers_unet_map[f"down_blocks.{x}.downsamplers.0.conv.{k}"] = f"input_blocks.{n}.0.op.{k}"

    i = 0
    for b in UNET_MAP_ATTENTIONS:
        diffusers_unet_map[f"mid_block.attentions.{i}.{b}"] = f"middle_block.1.{b}"
    for t in range(transformers_mid):
        for b in TRANSFORMER_BLOCKS:
            diffusers_unet_map[f"mid_block.attentions.{i}.transformer_blocks.{t}.{b}"] = (
                f"middle_block.1.transformer_blocks.{t}.{b}"
            )

    for i, n in enumerate([0, 2]):
        for b, resnet_name in UNET_MAP_RESNET.items():
            diffusers_unet_map[f"mid_block.resnets.{i}.{resnet_name}"] = f"middle_block.{n}.{b}"

    num_res_blocks = list(reversed(num_res_blocks))
    for x in range(num_blocks):
        n = (num_res_blocks[x] + 1) * x
        length = num_res_blocks[x] + 1  # `l` in ComfyUI
        for i in range(length):
            c = 0
            for b, resnet_name in UNET_MAP_RESNET.items():
                diffusers_unet_map[f"up_blocks.{x}.resnets.{i}.{resnet_name}"] = f"output_blocks.{n}.0.{b}"
            c += 1
            num_transformers = transformer_depth_output.pop()
            if num_transformers > 0:
                c += 1
                for b in UNET_MAP_ATTENTIONS:
                    diffusers_unet_map[f"up_blocks.{x}.attentions.{i}.{b}"] = f"output_blocks.{n}.1.{b}"
                for t in range(num_transformers):
                    for b in TRANSFORMER_BLOCKS:
                        diffusers_unet_map[f"up_blocks.{x}.attentions.{i}.transformer_blocks.{t}.{b}"] = (
                            f"output_blocks.{n}.1.transformer_blocks.{t}.{b}"
                        )
            if i == length - 1:
                for k in ["weight", "bias"]:
                    diffusers_unet_map[f"up_blocks.{x}.upsamplers.0.conv.{k}"] = (
                        f"output_blocks.{n}.{c}.conv.{k}"
                    )
            n += 1

    for k in UNET_MAP_BASIC:
        diffusers_unet_map[k[1]] = k[0]

    return diffusers_unet_map


# -- comfy/model_detection.py `unet_config_from_diffusers_unet` (the keys unet_to_diffusers reads) ----

UNET_CONFIGS: dict[str, dict[str, Any]] = {
    SD15.id: {
        "model_channels": 320,
        "num_res_blocks": [2, 2, 2, 2],
        "channel_mult": [1, 2, 4, 4],
        "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "transformer_depth_middle": 1,
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
        "use_linear_in_transformer": False,
        "context_dim": 768,
        "adm_in_channels": None,
    },
    SDXL.id: {
        "model_channels": 320,
        "num_res_blocks": [2, 2, 2],
        "channel_mult": [1, 2, 4],
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "transformer_depth_middle": 10,
        "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
        "use_linear_in_transformer": True,
        "context_dim": 2048,
        "adm_in_channels": 2816,
    },
}


def ldm_unet_state_keys(diffusers_keys: Iterable[str], unet_config: dict[str, Any]) -> dict[str, str]:
    """diffusers parameter name → ComfyUI model state-dict key (`diffusion_model.<LDM name>`).

    ComfyUI's SD1.5/SDXL model is the LDM UNet under `diffusion_model.`; its parameter names are the
    images of the diffusers ones under `unet_to_diffusers`. Parameters the map does not know are
    left out (the caller checks there are none).
    """
    mapping = unet_to_diffusers(unet_config)
    return {key: f"diffusion_model.{mapping[key]}" for key in diffusers_keys if key in mapping}


# -- comfy/lora.py ----------------------------------------------------------------------------------


def model_lora_keys_unet(sdk: Iterable[str], unet_config: dict[str, Any]) -> dict[str, str]:
    """`comfy/lora.py` `model_lora_keys_unet` for an SD1.5/SDXL model: LoRA stem → model key.

    `sdk` is the model's state-dict keys (`diffusion_model.…`). Two `lora_unet_` rules:
    the LDM name (`lora_unet_input_blocks_4_1_…`) from the model's own keys, and the diffusers name
    (`lora_unet_down_blocks_1_attentions_0_…`) from `unet_to_diffusers`, in both with `.` → `_`.
    """
    key_map: dict[str, str] = {}
    for k in sdk:
        if k.startswith("diffusion_model."):
            if k.endswith(".weight"):
                key_lora = k[len("diffusion_model.") : -len(".weight")].replace(".", "_")
                key_map[f"lora_unet_{key_lora}"] = k
                key_map[k[: -len(".weight")]] = k  # generic lora format without any weird key names
            else:
                key_map[k] = k  # generic lora format for not .weight without any weird key names

    diffusers_keys = unet_to_diffusers(unet_config)
    for k in diffusers_keys:
        if k.endswith(".weight"):
            unet_key = f"diffusion_model.{diffusers_keys[k]}"
            key_lora = k[: -len(".weight")].replace(".", "_")
            key_map[f"lora_unet_{key_lora}"] = unet_key
            key_map[f"lycoris_{key_lora}"] = unet_key  # simpletuner lycoris format

            diffusers_lora_prefix = ["", "unet."]
            for p in diffusers_lora_prefix:
                diffusers_lora_key = "{}{}".format(p, k[: -len(".weight")].replace(".to_", ".processor.to_"))
                if diffusers_lora_key.endswith(".to_out.0"):
                    diffusers_lora_key = diffusers_lora_key[:-2]
                key_map[diffusers_lora_key] = unet_key
    return key_map


LORA_CLIP_MAP = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}


def model_lora_keys_clip(sdk: Iterable[str]) -> dict[str, str]:
    """`comfy/lora.py` `model_lora_keys_clip`, the CLIP-L/CLIP-H/CLIP-G branches: LoRA stem → model key.

    `sdk` is the text-encoder model's state-dict keys (`clip_l.transformer.text_model.…`). SD1.5
    (clip_l only): `lora_te_…` and `lora_te1_…`. SDXL (clip_l + clip_g): clip_l as `lora_te_` and
    `lora_te1_`, clip_g as `lora_te2_`. The T5/HunyuanDiT/llama branches are left out.
    """
    sdk = set(sdk)
    key_map: dict[str, str] = {}
    for k in sdk:
        if k.endswith(".weight"):
            key_map["text_encoders.{}".format(k[: -len(".weight")])] = k
            tp = k.find(".transformer.")
            if tp > 0 and not k.startswith("clip_"):
                key_map["text_encoders.{}".format(k[tp + 1 : -len(".weight")])] = k

    text_model_lora_key = "lora_te_text_model_encoder_layers_{}_{}"
    clip_l_present = False
    for b in range(32):
        for c, lora_name in LORA_CLIP_MAP.items():
            k = f"clip_h.transformer.text_model.encoder.layers.{b}.{c}.weight"
            if k in sdk:
                key_map[text_model_lora_key.format(b, lora_name)] = k
                key_map[f"lora_te1_text_model_encoder_layers_{b}_{lora_name}"] = k
                key_map[f"text_encoder.text_model.encoder.layers.{b}.{c}"] = k  # diffusers lora

            k = f"clip_l.transformer.text_model.encoder.layers.{b}.{c}.weight"
            if k in sdk:
                key_map[text_model_lora_key.format(b, lora_name)] = k
                key_map[f"lora_te1_text_model_encoder_layers_{b}_{lora_name}"] = k  # SDXL base
                clip_l_present = True
                key_map[f"text_encoder.text_model.encoder.layers.{b}.{c}"] = k  # diffusers lora

            k = f"clip_g.transformer.text_model.encoder.layers.{b}.{c}.weight"
            if k in sdk:
                if clip_l_present:
                    key_map[f"lora_te2_text_model_encoder_layers_{b}_{lora_name}"] = k  # SDXL base
                    key_map[f"text_encoder_2.text_model.encoder.layers.{b}.{c}"] = k  # diffusers lora
                else:
                    key_map[f"lora_te_text_model_encoder_layers_{b}_{lora_name}"] = k
                    key_map[f"text_encoder.text_model.encoder.layers.{b}.{c}"] = k  # diffusers lora
                    key_map[f"lora_prior_te_text_model_encoder_layers_{b}_{lora_name}"] = k

    k = "clip_g.transformer.text_projection.weight"
    if k in sdk:
        key_map["lora_prior_te_text_projection"] = k
        key_map["lora_te2_text_projection"] = k
    k = "clip_l.transformer.text_projection.weight"
    if k in sdk:
        key_map["lora_te1_text_projection"] = k
    return key_map


# -- ComfyUI's text-encoder models (comfy/clip_model.py, sd1_clip.py, sdxl_clip.py) ----------------

CLIP_LAYERS = {"clip_l": 12, "clip_g": 32}  # sd1_clip_config.json, clip_config_bigg.json
TEXT_ENCODERS = {SD15.id: ("clip_l",), SDXL.id: ("clip_l", "clip_g")}  # SD1ClipModel, SDXLClipModel


def comfy_clip_state_keys(family: str) -> set[str]:
    """The state-dict keys of ComfyUI's text-encoder model for `family`, as `clip_model.py` names them."""
    keys: set[str] = set()
    layer_modules = ("layer_norm1", "layer_norm2", *LORA_CLIP_MAP)
    for clip in TEXT_ENCODERS[family]:
        root = f"{clip}.transformer."
        keys |= {
            f"{root}text_model.embeddings.token_embedding.weight",
            f"{root}text_model.embeddings.position_embedding.weight",
            f"{root}text_model.final_layer_norm.weight",
            f"{root}text_model.final_layer_norm.bias",
            f"{root}text_projection.weight",
        }
        for layer in range(CLIP_LAYERS[clip]):
            for module in layer_modules:
                for param in ("weight", "bias"):
                    keys.add(f"{root}text_model.encoder.layers.{layer}.{module}.{param}")
    return keys


def accepted_stems(key_map: dict[str, str], model_keys: Iterable[str]) -> dict[str, str]:
    """The stems ComfyUI both reads from a file (`load_lora`) and patches (`add_patches`)."""
    model_keys = set(model_keys)
    return {stem: target for stem, target in key_map.items() if target in model_keys}
