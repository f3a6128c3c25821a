"""The families LoRA Pilot trains, registered in the order people see them.

Adding a family is one `register(Family(...))` here plus its engine adapter
(`lorapilot/engine/families/<family>.py`, registered against the family with `@adapter_for`).
"""

from __future__ import annotations

from lorapilot.families.family import (
    NOT_EMPTY,
    ComfyGraph,
    ConfigMarker,
    Family,
    KohyaNames,
    LoraTargets,
    Recognition,
    frozen_mapping,
)
from lorapilot.families.registry import (
    AITOOLKIT_ARCH,
    AITOOLKIT_FLAG,
    DIFFUSION_PIPE_TYPE,
    KOHYA_COMPONENT,
    KOHYA_FLAG,
    register,
)

UNET_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
UNET_CONV = ("conv1", "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv")
# kohya's text-encoder LoRA (and ai-toolkit's kohya-derived network): CLIPAttention and CLIPMLP of
# every layer. All four projections matter: diffusers skips a text-encoder LoRA without out_proj.
CLIP_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
# Joint-attention projections of an MMDiT block, image and text streams: diffusers' default LoRA
# targets for SD3, and the attention part of FLUX's.
MMDIT_ATTENTION = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
)
# The diffusers FLUX LoRA script's attention and feed-forward layers, plus the single blocks' MLP and
# output projections that ai-toolkit trains too. Modulation (norm*.linear) layers stay frozen, as in
# kohya's default; the final `proj_out` is not a block layer.
FLUX_TARGETS = LoraTargets(
    denoiser=(
        *MMDIT_ATTENTION,
        "ff.net.0.proj",
        "ff.net.2",
        "ff_context.net.0.proj",
        "ff_context.net.2",
        "proj_mlp",
        "proj_out",
    ),
    exclude=r"proj_out",  # full match: the top-level output layer only
)
UNET_TARGETS = LoraTargets(UNET_ATTENTION, conv=UNET_CONV, text_encoder=CLIP_TARGETS)
CHECKPOINT_GRAPH = ComfyGraph("checkpoint", ("ckpt_name",))
FLUX_FILES = ("unet_name", "clip_name1", "clip_name2", "vae_name")
FLUX_OPTIONS = frozen_mapping({"weight_dtype": "default"})
UNET_DDPM = {  # what SD1.x, SD2.x and SDXL share
    "denoiser": "unet",
    "objective": "ddpm",
    "comfy": CHECKPOINT_GRAPH,
    "lora": UNET_TARGETS,
}
FLOW_TRANSFORMER = {
    "denoiser": "transformer",
    "objective": "flow",
    "network_types": ("lora",),  # no conv layers; ComfyUI loads no DoRA magnitudes for MMDiTs
    "trains_text_encoders": False,  # frozen encoders, cached outputs
    "quantizable": True,
    "image_multiple": 16,  # 8× VAE, 2×2 latent patches
}
FLUX_FILE_PATTERN = r"(^|\.)double_blocks\."

SD15 = register(
    Family(
        id="sd15",
        label="SD1.5",
        native_resolution=512,
        recognition=Recognition(
            pipeline_classes=("StableDiffusionPipeline",),
            tensor_patterns=(r"^model\.diffusion_model\.input_blocks\.",),
            name_pattern=r"(stable-diffusion-v1|sd[-_]?v?1[-_.]?5|sd15)",
            trusted_with=("sd2",),
        ),
        kohya=KohyaNames("sd_v1"),
        aliases=frozen_mapping({AITOOLKIT_ARCH: ("sd1", "sd15")}),
        **UNET_DDPM,
    )
)
SD2 = register(
    Family(
        id="sd2",
        label="SD2.x",
        native_resolution=768,
        recognition=Recognition(
            pipeline_classes=("StableDiffusionPipeline",),
            folder_markers=(  # OpenCLIP-H text encoder, or a v-prediction scheduler
                ConfigMarker("text_encoder/config.json", "hidden_act", "gelu"),
                ConfigMarker("text_encoder/config.json", "hidden_size", 1024),
                ConfigMarker("scheduler/scheduler_config.json", "prediction_type", "v_prediction"),
            ),
            tensor_patterns=(r"^cond_stage_model\.model\.",),
            name_pattern=r"(stable-diffusion-2|sd[-_]?2(\.|[-_])?[01]|768-v)",
            trusted_with=("sd15",),
        ),
        kohya=KohyaNames("sd_v2", v2=True),
        aliases=frozen_mapping({AITOOLKIT_ARCH: ("sd2",), AITOOLKIT_FLAG: ("is_v2",), KOHYA_FLAG: ("v2",)}),
        **UNET_DDPM,
    )
)
SDXL = register(
    Family(
        id="sdxl",
        label="SDXL",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
            tensor_patterns=(r"^conditioner\.embedders\.1\.",),
            name_pattern=r"xl|sdxl|pony|illustrious",
        ),
        kohya=KohyaNames("sdxl_base_v1-0"),
        aliases=frozen_mapping(
            {
                AITOOLKIT_ARCH: ("sdxl",),
                AITOOLKIT_FLAG: ("is_xl",),
                DIFFUSION_PIPE_TYPE: ("sdxl",),
                KOHYA_FLAG: ("sdxl",),
            }
        ),
        **UNET_DDPM,
    )
)
MMDIT_ATTN2 = r"\.x_block\.attn2\."  # MMDiT-X: a second image-only attention (SD3.5 medium)
MMDIT_QK_NORM = r"\.attn\.ln_q\."  # query-key RMS norms (SD3.5)
SD3_ALIASES = frozen_mapping(  # the trainers' SD3 names cover SD3.5: the files tell them apart
    {
        AITOOLKIT_ARCH: ("sd3",),
        AITOOLKIT_FLAG: ("is_v3",),
        DIFFUSION_PIPE_TYPE: ("sd3",),
        KOHYA_COMPONENT: ("clip_g",),  # only sd3_train_network.py takes it
    }
)
SD3_COMFY = ComfyGraph("checkpoint_triple_clip", ("ckpt_name", "clip_name1", "clip_name2", "clip_name3"))
T5XXL_FILES = ("t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors")
# SD3's checkpoints carry their VAE; a separate one has no conventional name (ae.safetensors is FLUX's)
SD3_SPLIT_FILES = frozen_mapping(
    {"clip_l": ("clip_l.safetensors",), "clip_g": ("clip_g.safetensors",), "t5xxl": T5XXL_FILES, "vae": ()}
)
SD3 = register(
    Family(
        id="sd3",
        label="SD3",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("StableDiffusion3Pipeline",),
            tensor_patterns=(r"(^|\.)joint_blocks\.",),
            tensor_absent=(MMDIT_QK_NORM, MMDIT_ATTN2),
            name_pattern=r"sd[-_.]?3|stable-diffusion-3",
        ),
        kohya=KohyaNames("sd3", architecture="stable-diffusion-v3"),
        comfy=SD3_COMFY,
        lora=LoraTargets(MMDIT_ATTENTION),
        aliases=SD3_ALIASES,
        split_files=SD3_SPLIT_FILES,
        **FLOW_TRANSFORMER,
    )
)
FLUX_ALIASES = frozen_mapping(
    {
        AITOOLKIT_ARCH: ("flux",),
        AITOOLKIT_FLAG: ("is_flux",),
        DIFFUSION_PIPE_TYPE: ("flux",),
        # the file argument only sd-scripts' flux_train_network.py takes (clip_l and t5xxl: SD3's too)
        KOHYA_COMPONENT: ("ae",),
    }
)
FLUX_SPLIT_FILES = frozen_mapping(  # sd-scripts' clip_l, t5xxl and ae
    {"clip_l": ("clip_l.safetensors",), "t5xxl": T5XXL_FILES, "vae": ("ae.safetensors",)}
)
FLUX_DEV = register(
    Family(
        id="flux-dev",
        label="FLUX.1 dev",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("FluxPipeline",),
            tensor_patterns=(FLUX_FILE_PATTERN, r"guidance_in\."),
            name_pattern=r"flux",
        ),
        kohya=KohyaNames("flux1", architecture="flux-1-dev"),
        comfy=ComfyGraph("unet_dual_clip", FLUX_FILES, FLUX_OPTIONS, guidance=True),
        lora=FLUX_TARGETS,
        aliases=FLUX_ALIASES,
        split_files=FLUX_SPLIT_FILES,
        **FLOW_TRANSFORMER,
    )
)
FLUX_SCHNELL = register(  # timestep-distilled: no guidance embedding
    Family(
        id="flux-schnell",
        label="FLUX.1 schnell",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("FluxPipeline",),
            folder_markers=(ConfigMarker("transformer/config.json", "guidance_embeds", False),),
            tensor_patterns=(FLUX_FILE_PATTERN,),
            tensor_absent=(r"guidance_in\.",),
            name_pattern=r"^(?=.*flux).*schnell",
            path_keyword="schnell",
        ),
        kohya=KohyaNames("flux1", architecture="flux-1-schnell"),
        comfy=ComfyGraph("unet_dual_clip", FLUX_FILES, FLUX_OPTIONS),
        lora=FLUX_TARGETS,
        aliases=FLUX_ALIASES,
        split_files=FLUX_SPLIT_FILES,
        **FLOW_TRANSFORMER,
    )
)
SD35_LARGE = register(  # refines SD3: query-key norms in every attention
    Family(
        id="sd35-large",
        label="SD3.5 Large",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("StableDiffusion3Pipeline",),
            folder_markers=(ConfigMarker("transformer/config.json", "qk_norm", "rms_norm"),),
            tensor_patterns=(r"(^|\.)joint_blocks\.", MMDIT_QK_NORM),
            tensor_absent=(MMDIT_ATTN2,),
            name_pattern=r"(sd[-_.]?3[-_.]?5|stable-diffusion-3\.5).*large",
        ),
        kohya=KohyaNames("sd3", architecture="stable-diffusion-3-5-large"),  # sd-scripts' sd3 "5-large"
        comfy=SD3_COMFY,
        lora=LoraTargets(MMDIT_ATTENTION),
        aliases=SD3_ALIASES,
        split_files=SD3_SPLIT_FILES,
        **FLOW_TRANSFORMER,
    )
)
SD35_MEDIUM = register(  # refines SD3.5 Large: MMDiT-X, a second attention in the first blocks
    Family(
        id="sd35-medium",
        label="SD3.5 Medium",
        native_resolution=1024,
        recognition=Recognition(
            pipeline_classes=("StableDiffusion3Pipeline",),
            folder_markers=(ConfigMarker("transformer/config.json", "dual_attention_layers", NOT_EMPTY),),
            tensor_patterns=(r"(^|\.)joint_blocks\.", MMDIT_ATTN2),
            name_pattern=r"(sd[-_.]?3[-_.]?5|stable-diffusion-3\.5).*medium",
        ),
        kohya=KohyaNames("sd3", architecture="stable-diffusion-3-5-medium"),  # sd-scripts' sd3 "5-medium"
        comfy=SD3_COMFY,
        lora=LoraTargets(MMDIT_ATTENTION),
        aliases=SD3_ALIASES,
        split_files=SD3_SPLIT_FILES,
        **FLOW_TRANSFORMER,
    )
)

# Every family's constant (SD15, SDXL, …), which `lorapilot.families` re-exports.
__all__ = [name for name, value in list(globals().items()) if isinstance(value, Family)]
