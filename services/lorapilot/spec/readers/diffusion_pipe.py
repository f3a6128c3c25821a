"""diffusion-pipe dialect: the main TOML (`[model]`, `[adapter]`, `[optimizer]`, epochs, micro
batch …) and the dataset TOML it names (`resolutions`, `enable_ar_bucket`, `[[directory]]`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lorapilot import families
from lorapilot.families import DIFFUSION_PIPE_TYPE
from lorapilot.spec import document
from lorapilot.spec.draft import (
    Draft,
    Ignored,
    Rule,
    To,
    Unsupported,
    apply_table,
    as_resolutions,
    join,
    one_of,
    section,
)
from lorapilot.spec.issues import SpecError
from lorapilot.spec.readers.aitoolkit import dtype_name

DIALECT = "diffusion-pipe"
DD = "dataset_defaults"
_OPTIMIZERS = {
    "adamw": "adamw",
    "adamw_optimi": "adamw",
    "adamw8bit": "adamw8bit",
    "adamw8bitkahan": "adamw8bit",
    "lion": "lion",
    "prodigy": "prodigy",
    "adafactor": "adafactor",
}


_optimizer_type = one_of(_OPTIMIZERS)


def _model_type(draft: Draft, value: Any, source: str) -> None:
    types = families.alias_names(DIFFUSION_PIPE_TYPE)
    if value not in types:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted=", ".join(types))
        return
    draft.hints["model_type"] = (value, source)


def _weight_dtype(draft: Draft, value: Any, source: str) -> None:
    if value == "float8":
        draft.issue(
            source,
            "not supported by LoRA Pilot: float8 weights",
            value,
            hint="set quantize to int8 or nf4 in LoRA Pilot's own config to save memory",
        )
        return
    try:
        draft.put(("model", "weight_dtype"), dtype_name(value), source)
    except ValueError as exc:
        draft.issue(source, str(exc), value)


def _optimizer_arg(name: str) -> Rule:
    return lambda draft, value, source: draft.put(("training", "optimizer_args", name), value, source)


def _flux_shift(draft: Draft, value: Any, source: str) -> None:
    if value:
        draft.put(("training", "timestep_sampling"), "flux_shift", source)


def _checkpointing(draft: Draft, value: Any, source: str) -> None:
    draft.put(("training", "gradient_checkpointing"), bool(value), source)
    if isinstance(value, str):
        draft.notice(source, f"{value!r} checkpointing is done as plain gradient checkpointing")


def _stages(draft: Draft, value: Any, source: str) -> None:
    if value != 1:
        draft.issue(source, "not supported by LoRA Pilot: pipeline parallelism", value, accepted="1")


def _dataset(draft: Draft, value: Any, source: str) -> None:
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
    draft.put(("output", "folder"), value, source)
    if isinstance(value, str) and value.strip("/"):
        draft.hints["output_name"] = (Path(value).name, source)


MODEL: dict[str, Rule] = {
    "type": _model_type,
    "diffusers_path": To(("model", "path")),
    "checkpoint_path": To(("model", "path")),
    "transformer_path": Unsupported("a separate transformer file; point diffusers_path at a full model"),
    "llm_path": Unsupported("separate LLM text encoders"),
    "ckpt_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "vae_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "clip_path": Unsupported("separate component files; point diffusers_path at a full model"),
    "dtype": _weight_dtype,
    "transformer_dtype": _weight_dtype,
    "timestep_sample_method": To(("training", "timestep_sampling")),
    "flux_shift": _flux_shift,
    "shift": To(("training", "discrete_flow_shift")),
    "guidance": To(("training", "guidance_scale")),
    "unet_lr": To(("training", "unet_lr")),
    "text_encoder_1_lr": To(("training", "text_encoder_lr")),
    "text_encoder_2_lr": Ignored("both SDXL text encoders train at text_encoder_1_lr"),
    "min_snr_gamma": To(("training", "min_snr_gamma")),
    "v_pred": To(("model", "v_parameterization")),
    "debiased_estimation_loss": Unsupported("the debiased estimation loss"),
    "bypass_guidance_embedding": Unsupported("bypassing FLUX's guidance embedding"),
}
ADAPTER: dict[str, Rule] = {
    "type": lambda d, v, s: None if v == "lora" else d.issue(s, "only lora adapters", v, accepted="lora"),
    "rank": To(("network", "dim")),
    "alpha": To(("network", "alpha")),
    "dtype": Ignored("LoRA parameters train in fp32; see save_dtype for the file"),
    "dropout": To(("network", "dropout")),
    "init_from_existing": Unsupported("starting from an existing LoRA"),
    "fuse_adapters": Unsupported("fusing other LoRAs into the base before training"),
    "decompose_factor": Unsupported("LoKr"),
}
OPTIMIZER: dict[str, Rule] = {
    "type": To(("training", "optimizer"), _optimizer_type),
    "lr": To(("training", "learning_rate")),
    "betas": _optimizer_arg("betas"),
    "weight_decay": _optimizer_arg("weight_decay"),
    "eps": _optimizer_arg("eps"),
    "stabilize": Unsupported("the Kahan-summation optimizer's stabilize option"),
}
_IGNORED_TOP = {
    "checkpoint_every_n_epochs": "resumable state is written with every save",
    "checkpoint_every_n_minutes": "resumable state is written with every save",
    "caching_batch_size": "caching batches are planned by the engine",
    "steps_per_print": "progress goes to status.json and the log every step",
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
}
TOP: dict[str, Rule] = {
    "output_dir": _output_dir,
    "dataset": _dataset,
    "epochs": To(("training", "epochs")),
    "max_steps": To(("training", "max_steps")),
    "micro_batch_size_per_gpu": To(("training", "batch_size")),
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
_TABLES = {"model": MODEL, "adapter": ADAPTER, "optimizer": OPTIMIZER}

DATASET_TOP: dict[str, Rule] = {
    "resolutions": To((DD, "resolutions"), as_resolutions),
    "enable_ar_bucket": To((DD, "bucket", "enabled")),
    "min_ar": Ignored("bucket shapes follow min/max resolution and step"),
    "max_ar": Ignored("bucket shapes follow min/max resolution and step"),
    "num_ar_buckets": Ignored("bucket shapes follow min/max resolution and step"),
    "ar_buckets": Unsupported("explicit aspect-ratio bucket lists"),
    "frame_buckets": Ignored("image LoRAs only"),
    "cache_shuffle_num": Unsupported("caption shuffle caching; set shuffle_caption in LoRA Pilot's config"),
    "cache_shuffle_delimiter": Unsupported("caption shuffle caching"),
    "skip_empty_caption": Ignored("images without a caption train on their class tokens"),
}


def detect(doc: Mapping[str, Any]) -> bool:
    return ("adapter" in doc and "model" in doc) or "micro_batch_size_per_gpu" in doc or "directory" in doc


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    if "directory" in doc and "model" not in doc:
        read_dataset(doc, draft, "")
        return
    for key, value in doc.items():
        if key == "monitoring":
            draft.notice(key, "ignored: metrics go to outputs/<name>/_logs/ and ControlPilot")
        elif key in _TABLES:
            mapping = section(draft, value, key)
            if mapping is not None:
                apply_table(draft, mapping, _TABLES[key], key)
        else:
            apply_table(draft, {key: value}, {**TOP, **{k: _not_a_table(k) for k in _TABLES}}, "")
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
        table: dict[str, Rule] = {
            "path": To(("datasets", base + i, "folder")),
            "num_repeats": To(("datasets", base + i, "repeats")),
            "resolutions": To(("datasets", base + i, "resolutions"), as_resolutions),
            "mask_path": Unsupported("loss masks"),
            "ar_buckets": Unsupported("explicit aspect-ratio bucket lists"),
            "frame_buckets": Ignored("image LoRAs only"),
            "enable_ar_bucket": To(("datasets", base + i, "bucket", "enabled")),
            **{k: DATASET_TOP[k] for k in ("min_ar", "max_ar", "num_ar_buckets")},
        }
        apply_table(draft, mapping, table, where)
        if "path" not in mapping:
            draft.issue(join(where, "path"), "required: the folder of this directory's images")


def _choose_family(draft: Draft) -> None:
    model_type = draft.hints.pop("model_type", None)
    if model_type is None:
        return
    # a hint: the files decide (type = 'flux' names dev and schnell alike)
    family = families.by_alias(DIFFUSION_PIPE_TYPE, model_type[0], draft.get(("model", "path")))
    draft.hints["family_hint"] = (family, model_type[1])
