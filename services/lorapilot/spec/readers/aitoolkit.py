"""ai-toolkit dialect: `job: extension` / `config.process[]`, or one bare process block.

The guide's smaller YAML snippets (`train:`, `datasets:`, `sample:`, `trigger_word:`) are bare
process blocks in ai-toolkit's vocabulary; they are read here too.
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
from lorapilot.spec.issues import did_you_mean
from lorapilot.spec.readers import kohya_dataset
from lorapilot.spec.readers.kohya_args import optimizer_name

DIALECT = "ai-toolkit"
DD = "dataset_defaults"
PROCESS_KEYS = (
    "type",
    "training_folder",
    "device",
    "trigger_word",
    "network",
    "save",
    "datasets",
    "train",
    "model",
    "sample",
    "logging",
    "performance_log_every",
)
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


dtype_name = one_of(_DTYPES, "float16, bf16, float32")
_timestep = one_of(_TIMESTEPS)


def _when_true(reason: str):
    def handle(draft: Draft, value: Any, source: str) -> None:
        if value:
            draft.issue(source, f"not supported by LoRA Pilot: {reason}", value)

    return handle


def _network_type(draft: Draft, value: Any, source: str) -> None:
    if value in ("lora", "locon", "dora"):
        draft.put(("network", "type"), value, source)
    else:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted="lora, locon, dora")


def _network_kwargs(draft: Draft, value: Any, source: str) -> None:
    mapping = section(draft, value, source)
    if mapping is None:
        return
    table: dict[str, Rule] = {
        "only_if_contains": To(("network", "target_modules"), as_str_list),
        "ignore_if_contains": Unsupported("excluding modules; list the ones to train in only_if_contains"),
    }
    apply_table(draft, mapping, table, source)


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


def _disable_sampling(draft: Draft, value: Any, source: str) -> None:
    if value:
        draft.put(("sample", "every"), 0, source)


def _train_unet(draft: Draft, value: Any, source: str) -> None:
    if value is False:
        draft.issue(source, "not supported by LoRA Pilot: training only the text encoder", value)


def _quantize(draft: Draft, value: Any, source: str) -> None:
    if value:
        draft.put(("model", "quantize"), "int8", source)
        draft.notice(source, "quantised with bitsandbytes int8 (ai-toolkit uses quanto qfloat8)")


def _arch(draft: Draft, value: Any, source: str) -> None:
    arches = families.alias_names(AITOOLKIT_ARCH)
    if value not in arches:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted=", ".join(arches))
        return
    draft.hints["arch"] = (AITOOLKIT_ARCH, value, source)


def _legacy_flag(name: str):
    """ai-toolkit's older `is_xl: true`-style flags, which `arch` replaced."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value:
            draft.hints["arch"] = (AITOOLKIT_FLAG, name, source)

    return handle


def _ema(draft: Draft, value: Any, source: str) -> None:
    mapping = section(draft, value, source)
    if mapping is None:
        return
    for key in mapping:
        if key not in ("use_ema", "ema_decay"):
            draft.issue(join(source, key), "unknown key", hint=did_you_mean(key, ("use_ema", "ema_decay")))
    if mapping.get("use_ema"):
        draft.put(("training", "ema_decay"), mapping.get("ema_decay", 0.99), join(source, "ema_decay"))


NETWORK: dict[str, Rule] = {
    "type": _network_type,
    "linear": To(("network", "dim")),
    "linear_alpha": To(("network", "alpha")),
    "conv": To(("network", "conv_dim")),
    "conv_alpha": To(("network", "conv_alpha")),
    "dropout": To(("network", "dropout")),
    "network_kwargs": _network_kwargs,
    "transformer_only": Ignored("LoRA targets the denoiser unless train_text_encoder is set"),
    "lokr_full_rank": Unsupported("LoKr"),
    "lokr_factor": Unsupported("LoKr"),
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
    "flip_y": Unsupported("vertical flips"),
    "token_dropout_rate": Unsupported("per-token dropout; use caption_dropout_rate"),
    "square_crop": Unsupported("square crops (images are resized into buckets)"),
    "augments": Unsupported("image augmentations"),
    "control_path": Unsupported("control images"),
    "mask_path": Unsupported("loss masks"),
    "alpha_mask": Unsupported("alpha masks as loss masks"),
    "prior_reg": Unsupported("prior regularisation; use is_reg datasets"),
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
    "unload_text_encoder": Ignored("encoders leave the GPU after caching in low_vram mode"),
    "ema_config": _ema,
    "skip_first_sample": Ignored("no sample is rendered before the first step"),
    "disable_sampling": _disable_sampling,
    "loss_type": lambda d, v, s: None if v == "mse" else d.issue(s, "only mse is supported", v),
    "content_or_style": Unsupported("content/style timestep biasing"),
    "bypass_guidance_embedding": Unsupported("bypassing FLUX's guidance embedding"),
    "linear_timesteps": Unsupported("linear timestep weighting"),
}
MODEL: dict[str, Rule] = {
    "name_or_path": To(("model", "path")),
    "arch": _arch,
    **{flag: _legacy_flag(flag) for flag in families.alias_names(AITOOLKIT_FLAG)},
    "quantize": _quantize,
    "quantize_te": Ignored("text encoders are cached, then unloaded"),
    "low_vram": To(("training", "low_vram")),
    "vae_path": To(("model", "vae")),
    "assistant_lora_path": Ignored("FLUX.1-schnell is trained without a training adapter here"),
}
SAMPLE: dict[str, Rule] = {
    "sampler": Ignored("samples use the model's own scheduler"),
    "sample_every": To(("sample", "every")),
    "width": To(("sample", "width")),
    "height": To(("sample", "height")),
    "prompts": To(("sample", "prompts"), as_str_list),
    "neg": To(("sample", "negative_prompt")),
    "seed": To(("sample", "seed")),
    "walk_seed": Ignored("every prompt uses the fixed seed"),
    "sample_start_step": Ignored("samples are rendered every sample_every steps from the start"),
    "guidance_scale": To(("sample", "guidance_scale")),
    "sample_steps": To(("sample", "steps")),
}


def detect(doc: Mapping[str, Any]) -> bool:
    if kohya_dataset.detect(doc):  # `datasets` alone is kohya's [[datasets]] with subsets
        return False
    if "job" in doc or isinstance(doc.get("config"), Mapping):
        return True
    return any(key in doc for key in _PROCESS_ONLY)


def read(doc: Mapping[str, Any], draft: Draft) -> None:
    if "job" in doc or "config" in doc:
        _read_job(doc, draft)
    else:
        read_process(doc, draft, "")
    _choose_family(draft)


def _read_job(doc: Mapping[str, Any], draft: Draft) -> None:
    for key, value in doc.items():
        if key == "job" and value != "extension":
            draft.issue("job", "only extension jobs train LoRAs", value, accepted="extension")
        elif key == "meta":
            draft.notice("meta", "ignored: descriptive only")
        elif key not in ("job", "config"):
            draft.issue(key, "unknown key", hint="an ai-toolkit file has job, config and meta")
    config = section(draft, doc.get("config"), "config")
    if not config:
        draft.issue("config", "required: config with name and process")
        return
    for key in config:
        if key not in ("name", "process"):
            draft.issue(join("config", key), "unknown key", hint="config has name and process")
    if "name" in config:
        draft.put(("output", "name"), config["name"], "config.name")
    processes = config.get("process")
    if not isinstance(processes, list) or len(processes) != 1:
        draft.issue("config.process", "must be a list with exactly one process", processes)
        return
    process = section(draft, processes[0], "config.process[0]")
    if process is not None:
        read_process(process, draft, "config.process[0]")


def read_process(process: Mapping[str, Any], draft: Draft, prefix: str) -> None:
    for key, value in process.items():
        source = join(prefix, key)
        if key == "type":
            if value not in ("sd_trainer", "diffusion_trainer", "ui_trainer"):
                draft.issue(
                    source, "not a LoRA training process", value, accepted="sd_trainer, diffusion_trainer"
                )
        elif key == "training_folder":
            draft.hints["training_folder"] = (value, source)
        elif key in ("device", "logging", "performance_log_every"):
            draft.notice(source, "ignored: the daemon chooses the GPU and logs to outputs/<name>/_logs/")
        elif key == "trigger_word":
            draft.put((DD, "trigger_word"), value, source)
        elif key == "datasets":
            _read_datasets(draft, value, source)
        elif key in _SECTIONS:
            mapping = section(draft, value, source)
            if mapping is not None:
                apply_table(draft, mapping, _SECTIONS[key], source)
        else:
            draft.issue(source, "unknown key", hint=_hint(key))
    _apply_training_folder(draft)


_SECTIONS = {"network": NETWORK, "save": SAVE, "train": TRAIN, "model": MODEL, "sample": SAMPLE}


def _hint(key: str) -> str | None:
    return did_you_mean(key, PROCESS_KEYS)


def _read_datasets(draft: Draft, value: Any, source: str) -> None:
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


def _apply_training_folder(draft: Draft) -> None:
    folder = draft.hints.get("training_folder")
    name = draft.get(("output", "name"))
    if folder and isinstance(folder[0], str) and isinstance(name, str):
        draft.put(("output", "folder"), f"{folder[0].rstrip('/')}/{name}", folder[1])


def _choose_family(draft: Draft) -> None:
    arch = draft.hints.pop("arch", None)
    path = draft.get(("model", "path"))
    if arch is not None:  # a hint: the files decide (is_flux names dev and schnell alike)
        dialect, name, source = arch
        draft.hints["family_hint"] = (families.by_alias(dialect, name, path), source)
    elif isinstance(path, str):
        guess = guess_from_name(path)
        if guess:
            draft.hints["family_guess"] = (guess, "model.name_or_path")
    train_dtype = draft.hints.pop("train_dtype", None)
    if train_dtype and draft.get(("training", "mixed_precision")) is None:
        precision = "no" if train_dtype[0] == "fp32" else train_dtype[0]
        draft.put(("training", "mixed_precision"), precision, train_dtype[1])
