"""diffusion-pipe dialect: the main TOML (`[model]`, `[adapter]`, `[optimizer]`, epochs, micro
batch …) and the dataset TOML it names (`resolutions`, `enable_ar_bucket`, `[[directory]]`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lorapilot import families
from lorapilot.families import DIFFUSION_PIPE_TYPE, Family
from lorapilot.spec import document
from lorapilot.spec.draft import (
    Draft,
    Ignored,
    NativePath,
    Rule,
    To,
    Unsupported,
    apply_table,
    as_resolutions,
    join,
    one_of,
    section,
    to_hint,
)
from lorapilot.spec.issues import SpecError
from lorapilot.spec.readers.aitoolkit_options import dtype_name, only, refused

DIALECT = "diffusion-pipe"
DD = "dataset_defaults"
DP = "diffusion-pipe default"
_OPTIMIZERS = {
    "adamw": "adamw",
    "adamw_optimi": "adamw",
    "adamw8bit": "adamw8bit",
    "adamw8bitkahan": "adamw8bit",
    "sgd": "sgd",
    "lion": "lion",
    "prodigy": "prodigy",
    "adafactor": "adafactor",
}
# optimi's AdamW (diffusion-pipe's recommended `adamw_optimi`) differs from torch's in these defaults.
_OPTIMI_DEFAULTS = {"betas": [0.9, 0.99], "eps": 1e-6}
# transformer_dtype values → model.quantize (float8 storage computed in `dtype`, or bitsandbytes nf4).
_QUANTIZED = {"float8": "float8", "float8_e4m3fn": "float8", "float8_e5m2": "float8", "nf4": "nf4"}


_optimizer_type = one_of(_OPTIMIZERS)


def _model_type(draft: Draft, value: Any, source: str) -> None:
    """names the model family (`model.family`)"""
    types = families.alias_names(DIFFUSION_PIPE_TYPE)
    if value not in types:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted=", ".join(types))
        return
    draft.hints["model_type"] = (value, source)


def _dtype(draft: Draft, value: Any, source: str) -> None:
    """[model] dtype: the base weights and the autocast dtype of every forward pass."""
    try:
        dtype = dtype_name(value)
    except ValueError as exc:
        draft.issue(source, str(exc), value)
        return
    draft.put(("model", "weight_dtype"), dtype, source)
    draft.put(("training", "mixed_precision"), "no" if dtype == "fp32" else dtype, source)


def _transformer_dtype(draft: Draft, value: Any, source: str) -> None:
    """float8 (or nf4) storage of the transformer's weights, computed in `dtype` as diffusion-pipe does."""
    if isinstance(value, str) and value.lower() in _QUANTIZED:
        draft.put(("model", "quantize"), _QUANTIZED[value.lower()], source)
        if value.lower() == "float8_e5m2":
            draft.notice(source, "stored as float8 e4m3 (diffusion-pipe: e5m2)")
        return
    try:
        dtype_name(value)
    except ValueError:
        draft.issue(
            source, "must be a dtype", value, accepted="float8, float8_e5m2, nf4, bfloat16, float16, float32"
        )
        return
    draft.notice(source, "ignored: the transformer is kept in [model] dtype")


def _optimizer_arg(name: str) -> Rule:
    def handle(draft: Draft, value: Any, source: str) -> None:
        draft.put(("training", "optimizer_args", name), value, source)

    handle.__doc__ = f"→ `training.optimizer_args.{name}`"
    return handle


def _checkpointing(draft: Draft, value: Any, source: str) -> None:
    """→ `training.gradient_checkpointing` ('unsloth' as plain checkpointing)"""
    draft.put(("training", "gradient_checkpointing"), bool(value), source)
    if isinstance(value, str):
        draft.notice(source, f"{value!r} checkpointing is done as plain gradient checkpointing")


def _micro_batch(draft: Draft, value: Any, source: str) -> None:
    """→ `training.batch_size`; per-resolution sizes ([[512, 4], [1024, 1]]) are refused"""
    if isinstance(value, list):
        draft.issue(
            source,
            "not supported by LoRA Pilot: a batch size per resolution",
            value,
            hint="give one batch size (LoRA Pilot's own config can give each dataset its batch_size)",
        )
        return
    draft.put(("training", "batch_size"), value, source)


def _stages(draft: Draft, value: Any, source: str) -> None:
    """1 passes; pipeline parallelism is refused"""
    if value != 1:
        draft.issue(source, "not supported by LoRA Pilot: pipeline parallelism", value, accepted="1")


def _dataset(draft: Draft, value: Any, source: str) -> None:
    """the dataset TOML, read with the `dataset` tables"""
    path = draft.referenced_file(value, source)
    if path is None:
        return
    try:
        doc = document.load(path)
    except SpecError as exc:
        draft.issues.extend(exc.issues)
        return
    read_dataset(doc, draft, path.name)


def _output_dir(draft: Draft, value: Any, source: str) -> None:
    """→ `output.folder`; its last part names the run"""
    draft.put(("output", "folder"), value, source)
    if isinstance(value, str) and value.strip("/"):
        draft.hints["output_name"] = (Path(value).name, source)


def _caption_prefix(target: NativePath) -> Rule:
    """caption_prefix is written before every caption, as LoRA Pilot's trigger word is."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if isinstance(value, str) and value.strip(" ,"):
            draft.put(target, value.strip(" ,"), source)
        elif value not in ("", None):
            draft.issue(source, "must be text", value)

    handle.__doc__ = "→ `trigger_word`, written before every caption"
    return handle


_TIMESTEPS_DOC = (
    "flow models: `training.timestep_sampling` (logit_normal by default; shift or flux_shift on top)"
)
_TE_DOC = (
    "SDXL: both text encoders train (`network.train_text_encoder`) at this LR (`training.text_encoder_lr`)"
)
MODEL: dict[str, Rule] = {
    "type": _model_type,
    "diffusers_path": To(("model", "path")),
    "checkpoint_path": To(("model", "path")),
    "transformer_path": To(("model", "transformer")),
    "llm_path": Unsupported("separate LLM text encoders"),
    "ckpt_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "vae_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "clip_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "single_file_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "dtype": _dtype,
    "transformer_dtype": _transformer_dtype,
    "timestep_sample_method": to_hint(
        "dp_timestep_sample_method",
        _TIMESTEPS_DOC,
    ),
    "sigmoid_scale": to_hint("dp_sigmoid_scale", "→ `training.logit_std` of the logit-normal sampler"),
    "flux_shift": to_hint(
        "dp_flux_shift",
        _TIMESTEPS_DOC,
    ),
    "shift": to_hint(
        "dp_shift",
        _TIMESTEPS_DOC + ", `training.discrete_flow_shift`",
    ),
    "guidance": To(("training", "guidance_scale")),
    "unet_lr": To(("training", "unet_lr")),
    "text_encoder_1_lr": to_hint(
        "dp_text_encoder_1_lr",
        _TE_DOC,
    ),
    "text_encoder_2_lr": to_hint(
        "dp_text_encoder_2_lr",
        _TE_DOC,
    ),
    "min_snr_gamma": To(("training", "min_snr_gamma")),
    "v_pred": to_hint(
        "dp_v_pred", "→ `model.v_parameterization` (without diffusion-pipe's zero-terminal-SNR rescale)"
    ),
    **refused("the debiased estimation loss", {"debiased_estimation_loss": False}),
    **refused("bypassing FLUX's guidance embedding", {"bypass_guidance_embedding": False}),
}
ADAPTER: dict[str, Rule] = {
    "type": only("lora", "only lora adapters"),
    "rank": To(("network", "dim")),
    "alpha": Unsupported("alpha: diffusion-pipe always trains with alpha = rank and refuses this key"),
    "dtype": to_hint("dp_adapter_dtype", "the saved LoRA's dtype when save_dtype is unset"),
    "dropout": To(("network", "dropout")),
    "init_from_existing": Unsupported("starting from an existing LoRA"),
    "fuse_adapters": Unsupported("fusing other LoRAs into the base before training"),
    "decompose_factor": Unsupported("LoKr", defaults=(-1,)),
    **refused("LoKr rank dropout", {"rank_dropout": 0.0}),
}
OPTIMIZER: dict[str, Rule] = {
    "type": to_hint(
        "dp_optimizer_type", "→ `training.optimizer` (adamw_optimi: with optimi's betas/eps defaults)"
    ),
    "lr": To(("training", "learning_rate")),
    "betas": _optimizer_arg("betas"),
    "weight_decay": _optimizer_arg("weight_decay"),
    "eps": _optimizer_arg("eps"),
    "stabilize": Unsupported("the Kahan-summation optimizer's stabilize option"),
    **refused("gradient release (an optimizer step per parameter)", {"gradient_release": False}),
}
MONITORING: dict[str, Rule] = {
    "enable_wandb": Unsupported("logging to Weights & Biases; metrics go to outputs/<name>/_logs/"),
    **{
        key: Ignored("Weights & Biases is not used")
        for key in ("wandb_api_key", "wandb_tracker_name", "wandb_run_name")
    },
}
_IGNORED_TOP = {
    "checkpoint_every_n_epochs": "resumable state is written with every save",
    "checkpoint_every_n_minutes": "resumable state is written with every save",
    "caching_batch_size": "caching batches are planned by the engine",
    "steps_per_print": "progress goes to status.json and the log every step",
    "logging_steps": "progress goes to status.json and the log every step",
    "partition_method": "there is no pipeline parallelism",
    "map_num_proc": "data loading is planned by the engine",
    "video_clip_mode": "image LoRAs only",
    "eval_every_n_epochs": "no evaluation datasets",
    "eval_before_first_step": "no evaluation datasets",
    "eval_micro_batch_size_per_gpu": "no evaluation datasets",
    "eval_gradient_accumulation_steps": "no evaluation datasets",
    "disable_block_swap_for_eval": "no evaluation datasets",
    "eval_every_n_steps": "no evaluation datasets",
    "eval_every_n_examples": "no evaluation datasets",
    "image_eval_micro_batch_size_per_gpu": "no evaluation datasets",
    "image_micro_batch_size_per_gpu": "image LoRAs only: micro_batch_size_per_gpu is the batch size",
    "reentrant_activation_checkpointing": "checkpointing is chosen by the engine",
    "partition_split": "there is no pipeline parallelism",
    "x_axis_examples": "plots use steps",
    "resume_from_checkpoint": "a job found in running/ resumes from its own state",
    "regenerate_cache": "caches are keyed by content and rebuilt when it changes",
}
TOP: dict[str, Rule] = {
    "output_dir": _output_dir,
    "dataset": _dataset,
    "epochs": To(("training", "epochs")),
    "max_steps": To(("training", "max_steps")),
    "micro_batch_size_per_gpu": _micro_batch,
    "pipeline_stages": _stages,
    "gradient_accumulation_steps": To(("training", "gradient_accumulation_steps")),
    "gradient_clipping": To(("training", "max_grad_norm")),
    "warmup_steps": To(("training", "warmup_steps")),
    "lr_scheduler": To(("training", "lr_scheduler")),
    "save_every_n_epochs": To(("save", "every_n_epochs")),
    "save_every_n_steps": To(("save", "every_n_steps")),
    "activation_checkpointing": _checkpointing,
    "save_dtype": To(("save", "dtype"), dtype_name),
    "compile": To(("training", "compile")),
    "blocks_to_swap": To(("training", "blocks_to_swap")),
    "eval_datasets": Unsupported("evaluation datasets"),
    "force_constant_lr": Unsupported("a forced constant LR; set lr_scheduler = 'constant'"),
    "pseudo_huber_c": Unsupported("the pseudo-Huber loss"),
    "save_every_n_examples": Unsupported("saving by example count; use save_every_n_steps"),
    "huggingface_repo": Unsupported("uploading to the hub"),
    "upload_hf_from_epoch": Unsupported("uploading to the hub"),
    **{key: Ignored(reason) for key, reason in _IGNORED_TOP.items()},
}
_TABLES = {"model": MODEL, "adapter": ADAPTER, "optimizer": OPTIMIZER, "monitoring": MONITORING}

DATASET_TOP: dict[str, Rule] = {
    "resolutions": To((DD, "resolutions"), as_resolutions),
    "enable_ar_bucket": To((DD, "bucket", "enabled")),
    "num_repeats": To((DD, "repeats")),
    "shuffle_tags": To((DD, "shuffle_caption")),
    "caption_prefix": _caption_prefix((DD, "trigger_word")),
    "min_ar": Ignored("bucket shapes follow min/max resolution and step"),
    "max_ar": Ignored("bucket shapes follow min/max resolution and step"),
    "num_ar_buckets": Ignored("bucket shapes follow min/max resolution and step"),
    "ar_buckets": Unsupported("explicit aspect-ratio bucket lists"),
    "size_buckets": Unsupported("explicit size buckets"),
    "frame_buckets": Ignored("image LoRAs only"),
    "cache_shuffle_num": Unsupported("caption shuffle caching; set shuffle_tags", defaults=(0,)),
    "cache_shuffle_delimiter": Ignored("applies to cache_shuffle_num"),
    "skip_empty_caption": Ignored("images without a caption train on their class tokens"),
}


def _directory_table(index: int) -> dict[str, Rule]:
    """One [[directory]]: its own path and repeats; bucket settings override the file's."""
    at: NativePath = ("datasets", index)
    return {
        "path": To((*at, "folder")),
        "num_repeats": To((*at, "repeats")),
        "resolutions": To((*at, "resolutions"), as_resolutions),
        "enable_ar_bucket": To((*at, "bucket", "enabled")),
        "shuffle_tags": To((*at, "shuffle_caption")),
        "caption_prefix": _caption_prefix((*at, "trigger_word")),
        "mask_path": Unsupported("loss masks"),
        **{k: DATASET_TOP[k] for k in ("min_ar", "max_ar", "num_ar_buckets", "ar_buckets", "size_buckets")},
        "frame_buckets": Ignored("image LoRAs only"),
    }


TABLES: dict[str, Mapping[str, Rule]] = {
    "main": TOP,
    "model": MODEL,
    "adapter": ADAPTER,
    "optimizer": OPTIMIZER,
    "monitoring": MONITORING,
    "dataset": DATASET_TOP,
    "dataset.directory[]": _directory_table(0),
}


def detect(doc: Mapping[str, Any]) -> bool:
    return ("adapter" in doc and "model" in doc) or "micro_batch_size_per_gpu" in doc or "directory" in doc


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    draft.hints["repeats_from_folder_names"] = False  # diffusion-pipe reads num_repeats only
    if "directory" in doc and "model" not in doc:
        read_dataset(doc, draft, "")
        return
    for key, value in doc.items():
        if key in _TABLES:
            mapping = section(draft, value, key)
            if mapping is not None:
                apply_table(draft, mapping, _TABLES[key], key)
        else:
            apply_table(draft, {key: value}, {**TOP, **{k: _not_a_table(k) for k in _TABLES}}, "")
    _finish(draft)
    _choose_family(draft)
    name = draft.hints.pop("output_name", None)
    if name and draft.get(("output", "name")) is None:
        draft.put(("output", "name"), name[0], name[1])


def _not_a_table(key: str) -> Rule:
    return lambda d, v, s: d.issue(s, f"must be a [{key}] table", v)


def read_dataset(doc: Mapping[str, Any], draft: Draft, file_label: str) -> None:
    prefix = f"{file_label}: " if file_label else ""
    directories = doc.get("directory")
    for key, value in doc.items():
        if key != "directory":
            apply_table(draft, {key: value}, DATASET_TOP, prefix.rstrip())
    if draft.get((DD, "bucket", "enabled")) is None:
        draft.default((DD, "bucket", "enabled"), False, f"{prefix}enable_ar_bucket ({DP} false)")
    if not isinstance(directories, list) or not directories:
        draft.issue(f"{prefix}directory", "needs at least one [[directory]] with a path")
        return
    base = len(draft.data.get("datasets", []))
    for i, item in enumerate(directories):
        where = f"{prefix}{join('directory', i)}"
        mapping = section(draft, item, where)
        if mapping is None:
            continue
        draft.put(("datasets", base + i), {}, where)
        apply_table(draft, mapping, _directory_table(base + i), where)
        if "path" not in mapping:
            draft.issue(join(where, "path"), "required: the folder of this directory's images")


# -- after the tables: options that depend on the model type or on each other -------------------
def _finish(draft: Draft) -> None:
    model_type = draft.hints.get("model_type")
    family = families.by_alias(DIFFUSION_PIPE_TYPE, model_type[0]) if model_type else None
    hint = draft.hints.pop
    _optimizer(draft, hint("dp_optimizer_type", None))
    _length(draft)
    _save_dtype(draft, hint("dp_adapter_dtype", None))
    _text_encoders(draft, family, hint("dp_text_encoder_1_lr", None), hint("dp_text_encoder_2_lr", None))
    _v_pred(draft, hint("dp_v_pred", None))
    if family is not None and not family.flow and model_type:
        draft.notice(
            model_type[1],
            "diffusion-pipe puts LoRA on every linear layer of the UNet blocks; LoRA Pilot on their "
            "attention projections (network.target_modules widens it)",
        )
    timesteps = {k: hint(f"dp_{k}", None) for k in ("timestep_sample_method", "sigmoid_scale", "shift")}
    _timesteps(draft, family, flux_shift=hint("dp_flux_shift", None), **timesteps)


def _optimizer(draft: Draft, kind: tuple | None) -> None:
    if kind is None:
        return
    value, source = kind
    try:
        draft.put(("training", "optimizer"), _optimizer_type(value), source)
    except ValueError as exc:
        draft.issue(source, str(exc), value)
        return
    if str(value).lower() == "adamw_optimi":
        for name, default in _OPTIMI_DEFAULTS.items():
            if draft.get(("training", "optimizer_args", name)) is None:
                draft.default(
                    ("training", "optimizer_args", name), default, f"optimizer.{name} (optimi AdamW default)"
                )


def _length(draft: Draft) -> None:
    if draft.get(("training", "epochs")) is None or draft.get(("training", "max_steps")) is None:
        return
    message = "with epochs: training stops at whichever ends first, as diffusion-pipe's train.py does"
    if draft.get(("training", "lr_scheduler")) == "linear":
        message += "; the linear LR decays over the run here, over all epochs in diffusion-pipe"
    draft.notice("max_steps", message)


def _save_dtype(draft: Draft, adapter_dtype: tuple | None) -> None:
    """Without save_dtype, diffusion-pipe saves the LoRA in its training dtype ([adapter] dtype,
    default [model] dtype); LoRA parameters train in fp32 here either way."""
    if adapter_dtype is not None:
        draft.notice(adapter_dtype[1], "LoRA parameters train in fp32; it sets the saved file's dtype")
    if draft.get(("save", "dtype")) is not None:
        return
    try:
        dtype = dtype_name(adapter_dtype[0]) if adapter_dtype else draft.get(("model", "weight_dtype"))
    except ValueError as exc:
        draft.issue(adapter_dtype[1], str(exc), adapter_dtype[0])
        return
    if dtype is not None:
        where = adapter_dtype[1] if adapter_dtype else f"save_dtype ({DP}: the training dtype)"
        draft.default(("save", "dtype"), dtype, where)


def _text_encoders(draft: Draft, family: Family | None, te1: tuple | None, te2: tuple | None) -> None:
    """diffusion-pipe's SDXL adapter puts LoRA on every linear layer of both text encoders and
    trains them at text_encoder_1_lr / text_encoder_2_lr (default: the optimizer's lr)."""
    if family is None or not family.trains_text_encoders:
        for given in (te1, te2):
            if given is not None:
                draft.notice(given[1], "ignored: this model's text encoders are not trained")
        return
    base = draft.get(("training", "learning_rate"))
    lr1, lr2 = (te1[0] if te1 else base), (te2[0] if te2 else base)
    if lr1 == lr2 == 0:
        draft.put(("network", "train_text_encoder"), False, (te1 or te2)[1])
        return
    if lr1 != lr2:
        where = te2[1] if te2 else te1[1]
        draft.issue(
            where,
            "LoRA Pilot trains both SDXL text encoders at one learning rate",
            lr2,
            hint=f"set text_encoder_1_lr and text_encoder_2_lr to the same value ({lr1})",
        )
        return
    source = (te1 or te2)[1] if (te1 or te2) else "[model] type (diffusion-pipe trains both text encoders)"
    draft.put(("network", "train_text_encoder"), True, source)
    if te1 or te2:
        draft.put(("training", "text_encoder_lr"), lr1, source)


def _v_pred(draft: Draft, v_pred: tuple | None) -> None:
    if v_pred is None:
        return
    draft.put(("model", "v_parameterization"), v_pred[0], v_pred[1])
    if v_pred[0]:
        draft.notice(
            v_pred[1],
            "diffusion-pipe also rescales the noise schedule to zero terminal SNR; LoRA Pilot keeps the "
            "model's schedule",
        )


def _timesteps(
    draft: Draft,
    family: Family | None,
    *,
    timestep_sample_method: tuple | None,
    sigmoid_scale: tuple | None,
    shift: tuple | None,
    flux_shift: tuple | None,
) -> None:
    """diffusion-pipe draws σ logit-normally (or uniformly), then shifts it by `shift` or the
    resolution-dependent FLUX shift; LoRA Pilot's samplers do the same when named so."""
    if family is None or not family.flow:
        for given in (timestep_sample_method, sigmoid_scale, shift, flux_shift):
            if given is not None:
                draft.notice(given[1], "ignored: this model trains with DDPM timesteps")
        return
    method = timestep_sample_method[0] if timestep_sample_method else "logit_normal"
    where = timestep_sample_method[1] if timestep_sample_method else f"timestep_sample_method ({DP})"
    if method not in ("logit_normal", "uniform"):
        draft.issue(where, "not supported by LoRA Pilot", method, accepted="logit_normal, uniform")
        return
    shifted = shift if shift and shift[0] else (flux_shift if flux_shift and flux_shift[0] else None)
    if shifted and method == "uniform":
        draft.issue(shifted[1], "not supported by LoRA Pilot: a shift on uniform timesteps", shifted[0])
        return
    if shift and shift[0]:
        draft.put(("training", "timestep_sampling"), "shift", shift[1])
        draft.put(("training", "discrete_flow_shift"), shift[0], shift[1])
    elif shifted:
        draft.put(("training", "timestep_sampling"), "flux_shift", shifted[1])
    elif timestep_sample_method:
        draft.put(("training", "timestep_sampling"), method, where)
    else:
        draft.default(("training", "timestep_sampling"), method, where)
    if sigmoid_scale:
        draft.put(("training", "logit_std"), sigmoid_scale[0], sigmoid_scale[1])


def _choose_family(draft: Draft) -> None:
    model_type = draft.hints.pop("model_type", None)
    if model_type is None:
        return
    # a hint: the files decide (type = 'flux' names dev and schnell alike)
    family = families.by_alias(DIFFUSION_PIPE_TYPE, model_type[0], draft.get(("model", "path")))
    draft.hints["family_hint"] = (family, model_type[1])
