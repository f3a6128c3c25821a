"""ai-toolkit dialect: `job: extension` / `config.process[]`, or one bare process block.

The guide's smaller YAML snippets (`train:`, `datasets:`, `sample:`, `trigger_word:`) are bare
process blocks in ai-toolkit's vocabulary; they are read here too. A whole job is read with
ai-toolkit's own defaults (`toolkit/config_modules.py`) for the keys it leaves out; a bare block
is a snippet merged over a profile, so it keeps ours.

`TABLES` holds one table per section: every option ai-toolkit's config classes and its web UI
know, each mapped (`To` or a handler), noticed (`Ignored`) or refused (`Unsupported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lorapilot import families
from lorapilot.families import AITOOLKIT_ARCH, AITOOLKIT_FLAG
from lorapilot.families.recognition import guess_from_name
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
)
from lorapilot.spec.readers import aitoolkit_sample, kohya_dataset
from lorapilot.spec.readers.kohya_args import optimizer_name

DIALECT = "ai-toolkit"
DD = "dataset_defaults"
AITK = "ai-toolkit default"
# Keys only ai-toolkit uses at the top of a bare process block (kohya's YAML has none of them).
_PROCESS_ONLY = ("train", "datasets", "sample", "save", "trigger_word", "training_folder")

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
# quanto weight types (model.qtype) → model.quantize, with what differs from ai-toolkit.
_QTYPES = {
    "qfloat8": ("float8", None),
    "float8": ("float8", None),
    "qint8": ("int8", "bitsandbytes int8 instead of quanto qint8"),
    "uint8": ("int8", "bitsandbytes int8 instead of quanto uint8"),
    "qint4": ("nf4", "bitsandbytes nf4 instead of quanto qint4"),
    "uint4": ("nf4", "bitsandbytes nf4 instead of quanto uint4"),
}


dtype_name = one_of(_DTYPES, "float16, bf16, float32")
_timestep = one_of(_TIMESTEPS)


def _when_true(reason: str):
    def handle(draft: Draft, value: Any, source: str) -> None:
        if value:
            draft.issue(source, f"not supported by LoRA Pilot: {reason}", value)

    return handle


def _refused(reason: str, keys: Mapping[str, Any]) -> dict[str, Rule]:
    """Rows for options LoRA Pilot does not do; each passes at ai-toolkit's default."""
    return {key: Unsupported(reason, defaults=(default,)) for key, default in keys.items()}


def _ignored(reason: str, keys: tuple[str, ...]) -> dict[str, Rule]:
    return {key: Ignored(reason) for key in keys}


def _network_type(draft: Draft, value: Any, source: str) -> None:
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


def _table(table: Mapping[str, Rule]) -> Rule:
    """A handler that reads a nested mapping with `table`."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        mapping = section(draft, value, source)
        if mapping is not None:
            apply_table(draft, mapping, table, source)

    return handle


def _scheduler_params(draft: Draft, value: Any, source: str) -> None:
    mapping = section(draft, value, source)
    if mapping is None:
        return
    for key, item in mapping.items():
        if key == "eta_min":
            draft.put(("training", "lr_end"), item, join(source, key))
        else:
            draft.notice(join(source, key), "ignored: the schedule length follows the run's steps")


def _dtype(draft: Draft, value: Any, source: str) -> None:
    try:
        dtype = dtype_name(value)
    except ValueError as exc:
        draft.issue(source, str(exc), value)
        return
    draft.put(("model", "weight_dtype"), dtype, source)
    draft.hints["train_dtype"] = (dtype, source)


def _flag_hint(name: str) -> Rule:
    """A flag that only matters together with others; read once the section is done."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        draft.hints[f"aitk_{name}"] = (value, source)

    return handle


def _train_unet(draft: Draft, value: Any, source: str) -> None:
    if value is False:
        draft.issue(source, "not supported by LoRA Pilot: training only the text encoder", value)


def _arch(draft: Draft, value: Any, source: str) -> None:
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

    return handle


def _timestep_bound(field: str, default: int) -> Rule:
    """min/max_denoising_steps: ai-toolkit's DDPM timestep range (default 0–999)."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value == default:
            draft.notice(source, f"ignored: {value} is ai-toolkit's default")
        else:
            draft.put(("training", field), value, source)

    return handle


EMA: dict[str, Rule] = {
    "use_ema": _flag_hint("use_ema"),
    "ema_decay": _flag_hint("ema_decay"),
    **_refused("EMA feedback", {"use_feedback": False}),
    **_refused("EMA parameter multipliers", {"param_multiplier": 1.0}),
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
    "network_kwargs": _table(NETWORK_KWARGS),
    "transformer_only": Ignored("LoRA targets the denoiser unless train_text_encoder is set"),
    **_ignored("LoKr options; network.type lokr is refused", ("lokr_full_rank", "lokr_factor")),
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
    "type": lambda d, v, s: None if v == "image" else d.issue(s, "only image datasets", v, accepted="image"),
    "mask_min_value": Ignored("applies to loss masks (mask_path), which are not used"),
    "cache_text_embeddings": To(("cache_text_encoder_outputs",)),
    **_ignored(
        "data loading is planned by the engine",
        ("num_workers", "prefetch_factor", "fast_image_size", "debug"),
    ),
    **_ignored("video datasets only", ("shrink_video_to_frames", "fps", "do_i2v")),
    **_ignored(
        "no control or CLIP-vision images",
        ("full_size_control_images", "control_transparent_color", "cache_clip_vision_to_disk"),
    ),
    **_ignored("applies to image augmentations, which are refused", ("shuffle_augmentations",)),
    **_ignored("applies to random_triggers, which are refused", ("random_triggers_max",)),
    **_ignored("applies to slider/reference datasets", ("guidance_type", "replay_transforms")),
    **_refused("video datasets", {"num_frames": 1}),
    **_refused("vertical flips", {"flip_y": False}),
    **_refused("per-token dropout; use caption_dropout_rate", {"token_dropout_rate": 0.0}),
    **_refused("square crops (images are resized into buckets)", {"square_crop": False}),
    **_refused("random crops (images are resized into buckets)", {"random_crop": False}),
    **_refused("random scaling", {"random_scale": False, "scale": 1.0}),
    **_refused("image augmentations", {"augments": [], "augmentations": None}),
    **_refused("control images", {"control_path": None, "controls": [], "inpaint_path": None}),
    **_refused("control images", {f"control_path_{n}": None for n in (1, 2, 3)}),
    **_refused("loss masks", {"mask_path": None, "invert_mask": False, "unconditional_path": None}),
    **_refused("alpha masks as loss masks", {"alpha_mask": False}),
    **_refused("prior regularisation; use is_reg datasets", {"prior_reg": False}),
    **_refused("JSON or hub datasets; use folder_path", {"dataset_path": None}),
    **_refused("random trigger words", {"random_triggers": []}),
    **_refused("caption replacements", {"replacements": []}),
    **_refused("short captions from JSON", {"use_short_captions": False}),
    **_refused("crop points of interest", {"poi": None}),
    **_refused("image standardisation", {"standardize_images": False}),
    **_refused("extra conditioning values", {"extra_values": []}),
    **_refused(
        "CLIP-vision images",
        {"clip_image_path": None, "clip_image_from_same_folder": False, "clip_image_augmentations": None},
    ),
    **_refused("CLIP-vision images", {"clip_image_shuffle_augmentations": False}),
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
    "xformers": lambda d, v, s: d.put(("training", "attention"), "xformers", s) if v else None,
    "sdp": lambda d, v, s: d.put(("training", "attention"), "sdpa", s) if v else None,
    "cache_text_embeddings": To(("training", "cache_text_encoder_outputs")),
    "reg_weight": To(("training", "prior_loss_weight")),
    "min_denoising_steps": _timestep_bound("min_timestep", 0),
    "max_denoising_steps": _timestep_bound("max_timestep", 999),
    "ema_config": _table(EMA),
    "skip_first_sample": _flag_hint("skip_first_sample"),
    "force_first_sample": Ignored("it renders the baseline again when a run resumes; resumed runs do not"),
    "disable_sampling": _flag_hint("disable_sampling"),
    "loss_type": lambda d, v, s: None if v == "mse" else d.issue(s, "only mse is supported", v),
    "auto_scale_batch_size": Ignored("the batch size stays at batch_size (ai-toolkit may lower it on OOM)"),
    **_ignored(
        "auto_scale_batch_size is not done", ("min_batch_size", "max_batch_size", "batch_size_warmup_steps")
    ),
    **_ignored(
        "LoRA Pilot trains one LoRA with unet_lr/text_encoder_lr",
        ("refiner_lr", "embedding_lr", "adapter_lr", "train_refiner", "show_turbo_outputs"),
    ),
    **_ignored("multi-stage models only", ("switch_boundary_every",)),
    **_ignored(
        "its option is refused unless off",
        (
            "diff_output_preservation_multiplier",
            "diff_output_preservation_class",
            "blank_prompt_preservation_multiplier",
            "differential_guidance_scale",
            "inverted_mask_prior_multiplier",
            "correct_pred_norm_multiplier",
            "target_norm_std_value",
            "paramiter_swapping_factor",
            "next_sample_timesteps",
            "max_negative_prompts",
            "guidance_loss_target",
            "unconditional_prompt",
            "latent_feature_loss_weight",
            "diffusion_feature_extractor_weight",
            "adapter_assist_type",
        ),
    ),
    "unload_text_encoder": Unsupported(
        "training on the trigger word alone with the text encoder unloaded; use cache_text_embeddings"
    ),
    **_refused("content/style timestep biasing", {"content_or_style": "balanced"}),
    **_refused("bypassing FLUX's guidance embedding", {"bypass_guidance_embedding": False}),
    **_refused("linear timestep weighting", {"linear_timesteps": False, "linear_timesteps2": False}),
    **_refused(
        "differential output preservation",
        {"diff_output_preservation": False, "blank_prompt_preservation": False},
    ),
    **_refused("differential guidance", {"do_differential_guidance": False}),
    **_refused("turbo training", {"train_turbo": False}),
    **_refused(
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
    **_refused(
        "ai-toolkit's batching tricks",
        {"short_and_long_captions": False, "short_and_long_captions_encoder_split": False},
    ),
    **_refused("single-item batching", {"single_item_batching": False}),
    **_refused(
        "adapter-assisted training",
        {"adapter_assist_name_or_path": None, "match_adapter_assist": False, "match_adapter_chance": 0.0},
    ),
    **_refused("negative prompts in training", {"negative_prompt": None}),
    **_refused("parameter swapping", {"do_paramiter_swapping": False}),
    **_refused("merging the LoRA into the model on save", {"merge_network_on_save": False}),
    **_refused("FreeU", {"free_u": False}),
    **_refused("starting at a given step; runs resume from their own state", {"start_step": None}),
    **_refused(
        "feature-extractor losses",
        {"latent_feature_extractor_path": None, "diffusion_feature_extractor_path": None},
    ),
}
MODEL: dict[str, Rule] = {
    "name_or_path": To(("model", "path")),
    "arch": _arch,
    **{flag: _legacy_flag(flag) for flag in families.alias_names(AITOOLKIT_FLAG)},
    "is_v_pred": To(("model", "v_parameterization")),
    "quantize": _flag_hint("quantize"),
    "qtype": _flag_hint("qtype"),
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
    **_ignored("the daemon places every component", ("vae_device", "te_device", "vae_dtype", "te_dtype")),
    **_ignored(
        "layer offloading is off; use low_vram or blocks_to_swap",
        ("layer_offloading_transformer_percent", "layer_offloading_text_encoder_percent"),
    ),
    **_ignored(
        "refiners and multi-GPU splits are not used",
        ("refiner_start_at", "split_model_other_module_param_count_scale", "unet_sample_size"),
    ),
    **_ignored("only ai-toolkit's own SDXL loader uses it", ("experimental_xl", "latent_space_version")),
    **_refused("layer offloading; use low_vram or blocks_to_swap", {"layer_offloading": False}),
    **_refused("extra model keyword arguments", {"model_kwargs": {}}),
    **_refused("excluding modules; list the ones to train in only_if_contains", {"ignore_if_contains": None}),
    **_refused("accuracy-recovery adapters", {"accuracy_recovery_adapter": None}),
    **_refused("starting from an existing LoRA", {"lora_path": None, "inference_lora_path": None}),
    **_refused("refiner models", {"refiner_name_or_path": None}),
    **_refused("separate UNet, text-encoder or extras paths", {"unet_path": None, "te_name_or_path": None}),
    **_refused("separate extras paths", {"extras_name_or_path": None}),
    **_refused("one SDXL text encoder", {"use_text_encoder_1": True, "use_text_encoder_2": True}),
    **_refused("FLUX attention masking", {"attn_masking": False}),
    **_refused("splitting the model over GPUs", {"split_model_over_gpus": False}),
    **_refused("CFG-trained FLUX", {"use_flux_cfg": False}),
    **_refused(
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
    "neg": lambda d, v, s: d.put(("sample", "negative_prompt"), v or "", s),
    "seed": To(("sample", "seed")),
    "walk_seed": aitoolkit_sample.walk_seed,
    "guidance_scale": To(("sample", "guidance_scale")),
    "sample_steps": To(("sample", "steps")),
    "sample_start_step": Ignored("samples are rendered every sample_every steps from the start"),
    "format": Ignored("samples are written as PNG"),
    **_ignored("no adapters, refiners or extra values", ("adapter_conditioning_scale", "refiner_start_at")),
    **_ignored("no adapters, refiners or extra values", ("extra_values",)),
    "fps": Ignored("image samples only"),
    **_refused("video samples", {"num_frames": 1}),
    **_refused("samples at another LoRA strength", {"network_multiplier": 1}),
    **_refused("guidance rescale in samples", {"guidance_rescale": 0.0}),
}

_SECTIONS = {"network": NETWORK, "save": SAVE, "train": TRAIN, "model": MODEL, "sample": SAMPLE}


def _process_type(draft: Draft, value: Any, source: str) -> None:
    if value not in ("sd_trainer", "diffusion_trainer", "ui_trainer"):
        draft.issue(source, "not a LoRA training process", value, accepted="sd_trainer, diffusion_trainer")


def _datasets(draft: Draft, value: Any, source: str) -> None:
    if not isinstance(value, list):
        draft.issue(source, "must be a list of datasets", value)
        return
    for i, item in enumerate(value):
        mapping = section(draft, item, join(source, i))
        if mapping is None:
            continue
        draft.put(("datasets", i), {}, join(source, i))
        table = {
            k: (To(("datasets", i, *r.path), r.convert) if isinstance(r, To) else r)
            for k, r in DATASET.items()
        }
        apply_table(draft, mapping, table, join(source, i))


PROCESS: dict[str, Rule] = {
    "type": _process_type,
    "training_folder": lambda d, v, s: d.hints.__setitem__("training_folder", (v, s)),
    "trigger_word": To((DD, "trigger_word")),
    "datasets": _datasets,
    **{name: _table(table) for name, table in _SECTIONS.items()},
    **_ignored(
        "the daemon chooses the GPU and logs to outputs/<name>/_logs/",
        ("device", "logging", "performance_log_every", "monitoring"),
    ),
    "sqlite_db_path": Ignored("ai-toolkit's web UI database; jobs live in the spool here"),
    **_refused("slider training", {"slider": None}),
    **_refused("adapter, embedding and decorator training", {"adapter": None, "embedding": None}),
    **_refused("adapter, embedding and decorator training", {"decorator": None}),
}
JOB: dict[str, Rule] = {
    "job": lambda d, v, s: (
        None if v == "extension" else d.issue(s, "only extension jobs train LoRAs", v, accepted="extension")
    ),
    "config": lambda d, v, s: None,  # read by _read_job
    "meta": Ignored("descriptive only"),
}
CONFIG: dict[str, Rule] = {"name": To(("output", "name")), "process": lambda d, v, s: None}
TABLES: dict[str, Mapping[str, Rule]] = {
    "job": JOB,
    "config": CONFIG,
    "process": PROCESS,
    "network": NETWORK,
    "network.network_kwargs": NETWORK_KWARGS,
    "save": SAVE,
    "datasets[]": DATASET,
    "train": TRAIN,
    "train.ema_config": EMA,
    "model": MODEL,
    "sample": SAMPLE,
    "sample.samples[]": aitoolkit_sample.SAMPLE_ITEM,
}


def detect(doc: Mapping[str, Any]) -> bool:
    if kohya_dataset.detect(doc):  # `datasets` alone is kohya's [[datasets]] with subsets
        return False
    if "job" in doc or isinstance(doc.get("config"), Mapping):
        return True
    return any(key in doc for key in _PROCESS_ONLY)


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    full_job = "job" in doc or "config" in doc
    if full_job:
        _read_job(doc, draft)
    else:
        read_process(doc, draft, "")
    _finish(draft, full_job)
    _choose_family(draft)


def _read_job(doc: Mapping[str, Any], draft: Draft) -> None:
    for key in doc:
        if key not in JOB:
            draft.issue(key, "unknown key", hint="an ai-toolkit file has job, config and meta")
    apply_table(draft, {k: v for k, v in doc.items() if k in JOB}, JOB, "")
    config = section(draft, doc.get("config"), "config")
    if not config:
        draft.issue("config", "required: config with name and process")
        return
    for key in config:
        if key not in CONFIG:
            draft.issue(join("config", key), "unknown key", hint="config has name and process")
    apply_table(draft, {k: v for k, v in config.items() if k in CONFIG}, CONFIG, "config")
    processes = config.get("process")
    if not isinstance(processes, list) or len(processes) != 1:
        draft.issue("config.process", "must be a list with exactly one process", processes)
        return
    process = section(draft, processes[0], "config.process[0]")
    if process is not None:
        read_process(process, draft, "config.process[0]")
        _apply_training_folder(draft)
        draft.hints["repeats_from_folder_names"] = False  # ai-toolkit reads num_repeats only


def read_process(process: Mapping[str, Any], draft: Draft, prefix: str) -> None:
    apply_table(draft, process, PROCESS, prefix)
    if not prefix:
        _apply_training_folder(draft)


def _apply_training_folder(draft: Draft) -> None:
    folder = draft.hints.get("training_folder")
    name = draft.get(("output", "name"))
    if folder and isinstance(folder[0], str) and isinstance(name, str):
        draft.put(("output", "folder"), f"{folder[0].rstrip('/')}/{name}", folder[1])


# -- after the sections: options that depend on each other, and ai-toolkit's defaults ----------
def _finish(draft: Draft, full_job: bool) -> None:
    hint = draft.hints.pop
    _quantize(draft, hint("aitk_quantize", None), hint("aitk_qtype", None))
    _ema(draft, hint("aitk_use_ema", None), hint("aitk_ema_decay", None))
    skip, disabled = hint("aitk_skip_first_sample", None), hint("aitk_disable_sampling", None)
    if disabled and disabled[0]:
        draft.put(("sample", "every"), 0, disabled[1])
    _conv_without_conv_layers(draft)
    aitoolkit_sample.finish(draft, full_job=full_job)
    if full_job:
        _job_defaults(draft)
        aitoolkit_sample.baseline(draft, bool(skip and skip[0]), bool(disabled and disabled[0]))


def _conv_without_conv_layers(draft: Draft) -> None:
    """The web UI writes `conv` for every network; ai-toolkit skips it on models whose LoRA has
    no conv layers (the transformer families)."""
    arch = draft.hints.get("arch")
    family = families.by_alias(arch[0], arch[1]) if arch else None
    if family is None or "locon" in family.network_types or draft.get(("network", "conv_dim")) is None:
        return
    network = draft.data["network"]
    for key in ("conv_dim", "conv_alpha"):
        network.pop(key, None)
    draft.notice("network.conv", f"ignored: {family.label} LoRAs have no conv layers")


def _quantize(draft: Draft, quantize: tuple | None, qtype: tuple | None) -> None:
    """ai-toolkit quantises the transformer with quanto when `quantize` is on, as `qtype`
    (default qfloat8: float8 storage, computed in the training dtype)."""
    if not quantize or not quantize[0]:
        if qtype:
            draft.notice(qtype[1], "ignored: applies only with quantize: true")
        return
    name = qtype[0] if qtype else "qfloat8"
    where = qtype[1] if qtype else quantize[1]
    mapped = _QTYPES.get(str(name).lower())
    if mapped is None:
        accepted = ", ".join(_QTYPES)
        draft.issue(where, "not supported by LoRA Pilot: this weight type", name, accepted=accepted)
        return
    draft.put(("model", "quantize"), mapped[0], where)
    if mapped[1]:
        draft.notice(where, f"quantised with {mapped[1]}")


def _ema(draft: Draft, use: tuple | None, decay: tuple | None) -> None:
    if use and use[0]:
        draft.put(("training", "ema_decay"), decay[0] if decay else 0.999, decay[1] if decay else use[1])


def _job_defaults(draft: Draft) -> None:
    """ai-toolkit's defaults (TrainConfig, DatasetConfig, NetworkConfig, SaveConfig) for what a
    whole job leaves out, where LoRA Pilot's would differ."""
    for path, value, source in (
        (("training", "learning_rate"), 1e-6, "train.lr"),
        (("training", "gradient_checkpointing"), True, "train.gradient_checkpointing"),
        (("training", "optimizer"), "adamw", "train.optimizer"),
        (("save", "every_n_steps"), 1000, "save.save_every"),
        (("save", "keep_last"), 5, "save.max_step_saves_to_keep"),
        ((DD, "resolutions"), [512], "datasets[].resolution"),
    ):
        if draft.get(path) is None:
            draft.put(path, value, f"{source} ({AITK})")
    if draft.get(("network", "dim")) is not None and draft.get(("network", "alpha")) is None:
        draft.put(("network", "alpha"), 1.0, f"network.linear_alpha ({AITK})")
        draft.notice("network.linear_alpha", "not set: ai-toolkit's default of 1 (scale = 1 / linear)")
    if draft.hints.get("train_dtype") is None:
        draft.notice("train.dtype", "not set: ai-toolkit trains in fp32 by default; LoRA Pilot uses bf16")


def _choose_family(draft: Draft) -> None:
    arch = draft.hints.pop("arch", None)
    path = draft.get(("model", "path"))
    if arch is not None:
        dialect, name, source = arch
        draft.put(("model", "family"), families.by_alias(dialect, name, path).id, source)
    elif isinstance(path, str):
        guess = guess_from_name(path)
        if guess:
            draft.hints["family_guess"] = (guess, "model.name_or_path")
    train_dtype = draft.hints.pop("train_dtype", None)
    if train_dtype and draft.get(("training", "mixed_precision")) is None:
        precision = "no" if train_dtype[0] == "fp32" else train_dtype[0]
        draft.put(("training", "mixed_precision"), precision, train_dtype[1])
