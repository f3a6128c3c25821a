"""ai-toolkit's options, one table per config section (its `toolkit/config_modules.py` classes and
the web UI's job types): each mapped onto TrainSpec (`To` or a handler), noticed (`Ignored`) or
refused (`Unsupported`, passing at ai-toolkit's own default). Options that depend on each other
leave a hint that `aitoolkit._finish` reads once the whole job is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lorapilot import families
from lorapilot.families import AITOOLKIT_ARCH, AITOOLKIT_FLAG
from lorapilot.spec.draft import (
    Draft,
    Ignored,
    Rule,
    To,
    Unsupported,
    apply_table,
    as_kwargs,
    as_resolutions,
    as_str_list,
    join,
    one_of,
    section,
    to_hint,
)
from lorapilot.spec.readers import aitoolkit_sample
from lorapilot.spec.readers.kohya_args import optimizer_name

_DTYPES = {
    "float16": "fp16",
    "fp16": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "float32": "fp32",
    "fp32": "fp32",
    "float": "fp32",
}
_TIMESTEPS = {
    "sigmoid": "sigmoid",
    "linear": "uniform",
    "uniform": "uniform",
    "shift": "shift",
    "logit_normal": "logit_normal",
    "flux_shift": "flux_shift",
}


dtype_name = one_of(_DTYPES, "float16, bf16, float32")
_timestep = one_of(_TIMESTEPS)


def _when_true(reason: str):
    def handle(draft: Draft, value: Any, source: str) -> None:
        if value:
            draft.issue(source, f"not supported by LoRA Pilot: {reason}", value)

    handle.__doc__ = f"refused when true: {reason}"
    return handle


def refused(reason: str, keys: Mapping[str, Any]) -> dict[str, Rule]:
    """Rows for options LoRA Pilot does not do; each passes at its trainer's default (the value)."""
    return {key: Unsupported(reason, defaults=(default,)) for key, default in keys.items()}


def ignored(reason: str, keys: tuple[str, ...]) -> dict[str, Rule]:
    return {key: Ignored(reason) for key in keys}


def only(accepted: str, message: str) -> Rule:
    """An option of which LoRA Pilot takes one value (`accepted`); any other is refused."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value != accepted:
            draft.issue(source, message, value, accepted=accepted)

    handle.__doc__ = f"{accepted} passes; any other value is refused"
    return handle


def _when_on(path: tuple[str, ...], value: str) -> Rule:
    def handle(draft: Draft, on: Any, source: str) -> None:
        if on:
            draft.put(path, value, source)

    handle.__doc__ = f"true → `{'.'.join(path)}` {value}"
    return handle


def _negative_prompt(draft: Draft, value: Any, source: str) -> None:
    """→ `sample.negative_prompt` (ai-toolkit's default, false, is none)"""
    draft.put(("sample", "negative_prompt"), value or "", source)


def _network_type(draft: Draft, value: Any, source: str) -> None:
    """→ `network.type` (lora, locon, dora; lokr and lorm are refused)"""
    if value in ("lora", "locon", "dora"):
        draft.put(("network", "type"), value, source)
    else:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted="lora, locon, dora")


def _only_if_contains(draft: Draft, value: Any, source: str) -> None:
    """Module-name filters of the LoRA; unset (ai-toolkit's None) keeps the family's targets."""
    if value in (None, []):
        return
    try:
        draft.put(("network", "target_modules"), as_str_list(value), source)
    except ValueError as exc:
        draft.issue(source, str(exc), value)


NETWORK_KWARGS: dict[str, Rule] = {
    "only_if_contains": _only_if_contains,
    "ignore_if_contains": Unsupported("excluding modules; list the ones to train in only_if_contains"),
}


def nested(table: Mapping[str, Rule]) -> Rule:
    """A handler that reads a nested mapping with `table`."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        mapping = section(draft, value, source)
        if mapping is not None:
            apply_table(draft, mapping, table, source)

    handle.__doc__ = "a section: its own table"
    return handle


def _scheduler_params(draft: Draft, value: Any, source: str) -> None:
    """eta_min → `training.lr_end`; the schedule's length follows the run"""
    mapping = section(draft, value, source)
    if mapping is None:
        return
    for key, item in mapping.items():
        if key == "eta_min":
            draft.put(("training", "lr_end"), item, join(source, key))
        else:
            draft.notice(join(source, key), "ignored: the schedule length follows the run's steps")


def _dtype(draft: Draft, value: Any, source: str) -> None:
    """→ `model.weight_dtype` and `training.mixed_precision` (fp32: no autocast)"""
    try:
        dtype = dtype_name(value)
    except ValueError as exc:
        draft.issue(source, str(exc), value)
        return
    draft.put(("model", "weight_dtype"), dtype, source)
    draft.hints["train_dtype"] = (dtype, source)


def _train_unet(draft: Draft, value: Any, source: str) -> None:
    """true (the default) passes; false, training only the text encoder, is refused"""
    if value is False:
        draft.issue(source, "not supported by LoRA Pilot: training only the text encoder", value)


def _arch(draft: Draft, value: Any, source: str) -> None:
    """names the model family (`model.family`)"""
    arches = families.alias_names(AITOOLKIT_ARCH)
    name = value.split(":")[0] if isinstance(value, str) else value  # the UI's "arch:tag" form
    if name not in arches:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted=", ".join(arches))
        return
    draft.hints["arch"] = (AITOOLKIT_ARCH, name, source)


def _legacy_flag(name: str):
    """ai-toolkit's older `is_xl: true`-style flags, which `arch` replaced."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value:
            draft.hints["arch"] = (AITOOLKIT_FLAG, name, source)

    handle.__doc__ = "true names the model family (`model.family`)"
    return handle


def _timestep_bound(field: str, default: int) -> Rule:
    """min/max_denoising_steps: ai-toolkit's DDPM timestep range (default 0–999)."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value == default:
            draft.notice(source, f"ignored: {value} is ai-toolkit's default")
        else:
            draft.put(("training", field), value, source)

    handle.__doc__ = f"→ `training.{field}` (ai-toolkit's default {default} leaves it unset)"
    return handle


# Settings of ai-toolkit options that are refused unless off: read with a notice naming the option.
_SETTINGS_OF = {
    "diff_output_preservation_multiplier": "diff_output_preservation",
    "diff_output_preservation_class": "diff_output_preservation",
    "blank_prompt_preservation_multiplier": "blank_prompt_preservation",
    "differential_guidance_scale": "do_differential_guidance",
    "inverted_mask_prior_multiplier": "inverted_mask_prior",
    "correct_pred_norm_multiplier": "correct_pred_norm",
    "target_norm_std_value": "target_norm_std",
    "paramiter_swapping_factor": "do_paramiter_swapping",
    "next_sample_timesteps": "timestep_type next_sample",
    "max_negative_prompts": "negative_prompt",
    "guidance_loss_target": "do_guidance_loss",
    "unconditional_prompt": "do_guidance_loss",
    "latent_feature_loss_weight": "latent_feature_extractor_path",
    "diffusion_feature_extractor_weight": "diffusion_feature_extractor_path",
    "adapter_assist_type": "adapter_assist_name_or_path",
}

EMA: dict[str, Rule] = {
    "use_ema": to_hint("aitk_use_ema", "use_ema → `training.ema_decay` (ai-toolkit's default decay 0.999)"),
    "ema_decay": to_hint(
        "aitk_ema_decay", "use_ema → `training.ema_decay` (ai-toolkit's default decay 0.999)"
    ),
    **refused("EMA feedback", {"use_feedback": False}),
    **refused("EMA parameter multipliers", {"param_multiplier": 1.0}),
}

NETWORK: dict[str, Rule] = {
    "type": _network_type,
    "linear": To(("network", "dim")),
    "rank": To(("network", "dim")),
    "linear_alpha": To(("network", "alpha")),
    "alpha": To(("network", "alpha")),
    "conv": To(("network", "conv_dim")),
    "conv_alpha": To(("network", "conv_alpha")),
    "dropout": To(("network", "dropout")),
    "network_kwargs": nested(NETWORK_KWARGS),
    "transformer_only": Ignored("LoRA targets the denoiser unless train_text_encoder is set"),
    **ignored("LoKr options; network.type lokr is refused", ("lokr_full_rank", "lokr_factor")),
    "split_multistage_loras": Ignored("single-stage models only"),
    "lorm": Unsupported("LoRM networks"),
}
SAVE: dict[str, Rule] = {
    "dtype": To(("save", "dtype"), dtype_name),
    "save_every": To(("save", "every_n_steps")),
    "max_step_saves_to_keep": To(("save", "keep_last")),
    "push_to_hub": _when_true("pushing to the hub"),
    "hf_repo_id": Unsupported("pushing to the hub"),
    "hf_private": Unsupported("pushing to the hub"),
    "save_format": Ignored("LoRAs are saved as .safetensors; see save.format for key naming"),
}
DATASET: dict[str, Rule] = {
    "folder_path": To(("folder",)),
    "caption_ext": To(("caption_extension",)),
    "caption_type": To(("caption_extension",)),  # legacy spelling of caption_ext
    "caption_dropout_rate": To(("caption_dropout",)),
    "shuffle_tokens": To(("shuffle_caption",)),
    "keep_tokens": To(("keep_tokens",)),
    "cache_latents_to_disk": To(("cache_latents_to_disk",)),
    "cache_latents": Ignored("latents are always cached"),
    "resolution": To(("resolutions",), as_resolutions),
    "num_repeats": To(("repeats",)),
    "is_reg": To(("is_reg",)),
    "network_weight": To(("weight",)),
    "loss_multiplier": To(("weight",)),
    "default_caption": To(("class_tokens",)),
    "trigger_word": To(("trigger_word",)),
    "flip_x": To(("flip",)),
    "buckets": To(("bucket", "enabled")),
    "bucket_tolerance": To(("bucket", "step")),
    "type": only("image", "only image datasets"),
    "mask_min_value": Ignored("applies to loss masks (mask_path), which are not used"),
    "cache_text_embeddings": To(("cache_text_encoder_outputs",)),
    **ignored(
        "data loading is planned by the engine",
        ("num_workers", "prefetch_factor", "fast_image_size", "debug"),
    ),
    **ignored("video datasets only", ("shrink_video_to_frames", "fps", "do_i2v")),
    **ignored(
        "no control or CLIP-vision images",
        ("full_size_control_images", "control_transparent_color", "cache_clip_vision_to_disk"),
    ),
    **ignored("applies to image augmentations, which are refused", ("shuffle_augmentations",)),
    **ignored("applies to random_triggers, which are refused", ("random_triggers_max",)),
    **ignored("applies to slider/reference datasets", ("guidance_type", "replay_transforms")),
    **refused("video datasets", {"num_frames": 1}),
    **refused("vertical flips", {"flip_y": False}),
    **refused("per-token dropout; use caption_dropout_rate", {"token_dropout_rate": 0.0}),
    **refused("square crops (images are resized into buckets)", {"square_crop": False}),
    **refused("random crops (images are resized into buckets)", {"random_crop": False}),
    **refused("random scaling", {"random_scale": False, "scale": 1.0}),
    **refused("image augmentations", {"augments": [], "augmentations": None}),
    **refused("control images", {"control_path": None, "controls": [], "inpaint_path": None}),
    **refused("control images", {f"control_path_{n}": None for n in (1, 2, 3)}),
    **refused("loss masks", {"mask_path": None, "invert_mask": False, "unconditional_path": None}),
    **refused("alpha masks as loss masks", {"alpha_mask": False}),
    **refused("prior regularisation; use is_reg datasets", {"prior_reg": False}),
    **refused("JSON or hub datasets; use folder_path", {"dataset_path": None}),
    **refused("random trigger words", {"random_triggers": []}),
    **refused("caption replacements", {"replacements": []}),
    **refused("short captions from JSON", {"use_short_captions": False}),
    **refused("crop points of interest", {"poi": None}),
    **refused("image standardisation", {"standardize_images": False}),
    **refused("extra conditioning values", {"extra_values": []}),
    **refused(
        "CLIP-vision images",
        {"clip_image_path": None, "clip_image_from_same_folder": False, "clip_image_augmentations": None},
    ),
    **refused("CLIP-vision images", {"clip_image_shuffle_augmentations": False}),
}
TRAIN: dict[str, Rule] = {
    "batch_size": To(("training", "batch_size")),
    "steps": To(("training", "max_steps")),
    "gradient_accumulation": To(("training", "gradient_accumulation_steps")),
    "gradient_accumulation_steps": To(("training", "gradient_accumulation_steps")),
    "train_unet": _train_unet,
    "train_text_encoder": To(("network", "train_text_encoder")),
    "gradient_checkpointing": To(("training", "gradient_checkpointing")),
    "noise_scheduler": Ignored("the training objective follows the model family"),
    "optimizer": To(("training", "optimizer"), optimizer_name),
    "optimizer_params": To(("training", "optimizer_args"), as_kwargs),
    "lr": To(("training", "learning_rate")),
    "unet_lr": To(("training", "unet_lr")),
    "text_encoder_lr": To(("training", "text_encoder_lr")),
    "lr_scheduler": To(("training", "lr_scheduler")),
    "lr_scheduler_params": _scheduler_params,
    "warmup_steps": To(("training", "warmup_steps")),
    "lr_warmup_steps": To(("training", "warmup_steps")),
    "lr_end": To(("training", "lr_end")),
    "timestep_type": To(("training", "timestep_sampling"), _timestep),
    "noise_offset": To(("training", "noise_offset")),
    "min_snr_gamma": To(("training", "min_snr_gamma")),
    "max_grad_norm": To(("training", "max_grad_norm")),
    "seed": To(("training", "seed")),
    "mixed_precision": To(("training", "mixed_precision")),
    "dtype": _dtype,
    "xformers": _when_on(("training", "attention"), "xformers"),
    "sdp": _when_on(("training", "attention"), "sdpa"),
    "cache_text_embeddings": To(("training", "cache_text_encoder_outputs")),
    "reg_weight": To(("training", "prior_loss_weight")),
    "min_denoising_steps": _timestep_bound("min_timestep", 0),
    "max_denoising_steps": _timestep_bound("max_timestep", 999),
    "ema_config": nested(EMA),
    "skip_first_sample": to_hint(
        "aitk_skip_first_sample",
        "off (ai-toolkit's default): `sample.at_start`, a baseline render before training",
    ),
    "force_first_sample": Ignored("it renders the baseline again when a run resumes; resumed runs do not"),
    "disable_sampling": to_hint("aitk_disable_sampling", "→ `sample.every` 0 and no baseline render"),
    "loss_type": only("mse", "only the mse loss is supported"),
    "auto_scale_batch_size": Ignored("the batch size stays at batch_size (ai-toolkit may lower it on OOM)"),
    **ignored(
        "auto_scale_batch_size is not done", ("min_batch_size", "max_batch_size", "batch_size_warmup_steps")
    ),
    **ignored(
        "LoRA Pilot trains one LoRA with unet_lr/text_encoder_lr",
        ("refiner_lr", "embedding_lr", "adapter_lr", "train_refiner", "show_turbo_outputs"),
    ),
    **ignored("multi-stage models only", ("switch_boundary_every",)),
    **{
        key: Ignored(f"applies only with {owner}, which LoRA Pilot refuses unless off")
        for key, owner in _SETTINGS_OF.items()
    },
    "unload_text_encoder": Unsupported(
        "training on the trigger word alone with the text encoder unloaded; use cache_text_embeddings"
    ),
    **refused("content/style timestep biasing", {"content_or_style": "balanced"}),
    **refused("bypassing FLUX's guidance embedding", {"bypass_guidance_embedding": False}),
    **refused("linear timestep weighting", {"linear_timesteps": False, "linear_timesteps2": False}),
    **refused(
        "differential output preservation",
        {"diff_output_preservation": False, "blank_prompt_preservation": False},
    ),
    **refused("differential guidance", {"do_differential_guidance": False}),
    **refused("turbo training", {"train_turbo": False}),
    **refused(
        "ai-toolkit's loss and noise tweaks",
        {
            "snr_gamma": None,
            "learnable_snr_gos": False,
            "weight_jitter": 0.0,
            "noise_multiplier": 1.0,
            "target_noise_multiplier": 1.0,
            "random_noise_multiplier": 0.0,
            "random_noise_shift": 0.0,
            "img_multiplier": 1.0,
            "noisy_latent_multiplier": 1.0,
            "latent_multiplier": 1.0,
            "num_train_timesteps": 1000,
            "adaptive_scaling_factor": False,
            "prompt_dropout_prob": 0.0,
            "match_noise_norm": False,
            "loss_target": "noise",
            "inverted_mask_prior": False,
            "standardize_images": False,
            "standardize_latents": False,
            "dynamic_noise_offset": False,
            "correct_pred_norm": False,
            "pred_scaler": 1.0,
            "prompt_saturation_chance": 0.0,
            "do_prior_divergence": False,
            "target_norm_std": None,
            "optimal_noise_pairing_samples": 1,
            "force_consistent_noise": False,
            "blended_blur_noise": False,
            "do_guidance_loss": False,
            "do_cfg": False,
            "do_random_cfg": False,
            "cfg_scale": 1.0,
            "max_cfg_scale": 1.0,
            "cfg_rescale": 1.0,
        },
    ),
    **refused(
        "ai-toolkit's batching tricks",
        {"short_and_long_captions": False, "short_and_long_captions_encoder_split": False},
    ),
    **refused("single-item batching", {"single_item_batching": False}),
    **refused(
        "adapter-assisted training",
        {"adapter_assist_name_or_path": None, "match_adapter_assist": False, "match_adapter_chance": 0.0},
    ),
    **refused("negative prompts in training", {"negative_prompt": None}),
    **refused("parameter swapping", {"do_paramiter_swapping": False}),
    **refused("merging the LoRA into the model on save", {"merge_network_on_save": False}),
    **refused("FreeU", {"free_u": False}),
    **refused("starting at a given step; runs resume from their own state", {"start_step": None}),
    **refused(
        "feature-extractor losses",
        {"latent_feature_extractor_path": None, "diffusion_feature_extractor_path": None},
    ),
}
MODEL: dict[str, Rule] = {
    "name_or_path": To(("model", "path")),
    "arch": _arch,
    **{flag: _legacy_flag(flag) for flag in families.alias_names(AITOOLKIT_FLAG)},
    "is_v_pred": To(("model", "v_parameterization")),
    "quantize": to_hint(
        "aitk_quantize",
        "with quantize: `model.quantize` by qtype (qfloat8 → float8, qint8/uint8 → int8, qint4/uint4 → nf4)",
    ),
    "qtype": to_hint(
        "aitk_qtype",
        "with quantize: `model.quantize` by qtype (qfloat8 → float8, qint8/uint8 → int8, qint4/uint4 → nf4)",
    ),
    "quantize_te": Ignored("text encoders are cached, then unloaded"),
    "qtype_te": Ignored("text encoders are cached, then unloaded"),
    "text_encoder_bits": Ignored("text encoders are cached, then unloaded"),
    "quantize_kwargs": Ignored("float8/int8/nf4 quantise every linear layer of the denoiser"),
    "low_vram": To(("training", "low_vram")),
    "compile": To(("training", "compile")),
    "vae_path": To(("model", "vae")),
    "assistant_lora_path": To(("model", "assistant_lora")),
    "dtype": Ignored("the base weights load in train.dtype"),
    "only_if_contains": _only_if_contains,
    **ignored("the daemon places every component", ("vae_device", "te_device", "vae_dtype", "te_dtype")),
    **ignored(
        "layer offloading is off; use low_vram or blocks_to_swap",
        ("layer_offloading_transformer_percent", "layer_offloading_text_encoder_percent"),
    ),
    **ignored(
        "refiners and multi-GPU splits are not used",
        ("refiner_start_at", "split_model_other_module_param_count_scale", "unet_sample_size"),
    ),
    **ignored("only ai-toolkit's own SDXL loader uses it", ("experimental_xl", "latent_space_version")),
    **refused("layer offloading; use low_vram or blocks_to_swap", {"layer_offloading": False}),
    **refused("extra model keyword arguments", {"model_kwargs": {}}),
    **refused("excluding modules; list the ones to train in only_if_contains", {"ignore_if_contains": None}),
    **refused("accuracy-recovery adapters", {"accuracy_recovery_adapter": None}),
    **refused("starting from an existing LoRA", {"lora_path": None, "inference_lora_path": None}),
    **refused("refiner models", {"refiner_name_or_path": None}),
    **refused("separate UNet, text-encoder or extras paths", {"unet_path": None, "te_name_or_path": None}),
    **refused("separate extras paths", {"extras_name_or_path": None}),
    **refused("one SDXL text encoder", {"use_text_encoder_1": True, "use_text_encoder_2": True}),
    **refused("FLUX attention masking", {"attn_masking": False}),
    **refused("splitting the model over GPUs", {"split_model_over_gpus": False}),
    **refused("CFG-trained FLUX", {"use_flux_cfg": False}),
    **refused(
        "this model family",
        {f"is_{name}": False for name in ("pixart", "pixart_sigma", "auraflow", "lumina2", "ssd", "vega")},
    ),
}
SAMPLE: dict[str, Rule] = {
    "sampler": Ignored("samples use the model's own scheduler"),
    "sample_every": To(("sample", "every")),
    "width": To(("sample", "width")),
    "height": To(("sample", "height")),
    "prompts": aitoolkit_sample.legacy_prompts,
    "samples": aitoolkit_sample.samples,
    "neg": _negative_prompt,
    "seed": To(("sample", "seed")),
    "walk_seed": aitoolkit_sample.walk_seed,
    "guidance_scale": To(("sample", "guidance_scale")),
    "sample_steps": To(("sample", "steps")),
    "sample_start_step": Ignored("samples are rendered every sample_every steps from the start"),
    "format": Ignored("samples are written as PNG"),
    **ignored("no adapters, refiners or extra values", ("adapter_conditioning_scale", "refiner_start_at")),
    **ignored("no adapters, refiners or extra values", ("extra_values",)),
    "fps": Ignored("image samples only"),
    **refused("video samples", {"num_frames": 1}),
    **refused("samples at another LoRA strength", {"network_multiplier": 1}),
    **refused("guidance rescale in samples", {"guidance_rescale": 0.0}),
}
