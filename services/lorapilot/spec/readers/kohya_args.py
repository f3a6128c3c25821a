"""kohya-ss training arguments: every flag name LoRA Pilot reads, ignores or refuses.

One flat table, since kohya flattens its config file's sections; `kohya.py` walks documents with it.
"""

from __future__ import annotations

import copy
from typing import Any

from lorapilot.families import KOHYA_COMPONENT, KOHYA_FLAG, alias_names
from lorapilot.spec import document
from lorapilot.spec.draft import (
    Draft,
    Ignored,
    NativePath,
    Rule,
    To,
    Unsupported,
    apply_table,
    as_kwargs,
    as_resolutions,
    one_of,
)
from lorapilot.spec.issues import SpecError
from lorapilot.spec.readers import kohya_dataset
from lorapilot.spec.readers.kohya_options import IGNORED, UNSUPPORTED
from lorapilot.spec.readers.kohya_prompts import read_prompt_file

DD = "dataset_defaults"

_OPTIMIZERS = {
    "adamw8bit": "adamw8bit",
    "bitsandbytes.optim.adamw8bit": "adamw8bit",
    "adamw": "adamw",
    "torch.optim.adamw": "adamw",
    "adafactor": "adafactor",
    "transformers.optimization.adafactor": "adafactor",
    "prodigy": "prodigy",
    "prodigyopt.prodigy": "prodigy",
    "lion": "lion",
    "lion8bit": "lion8bit",
    "sgd": "sgd",
    "sgdnesterov": "sgd",
}
_PRECISIONS = {"float": "fp32", "fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}


def optimizer_name(value: Any) -> str:
    """kohya/ai-toolkit optimizer spellings → TrainSpec names (unknown ones fail in validation)."""
    if not isinstance(value, str):
        raise ValueError("must be an optimizer name such as AdamW8bit")
    return _OPTIMIZERS.get(value.strip().lower(), value.strip().lower())


precision_name = one_of(_PRECISIONS, "float, fp16, bf16")


def _flag(target: tuple, when_true: Any) -> Any:
    def handle(draft: Draft, value: Any, source: str) -> None:
        if not isinstance(value, bool):
            draft.issue(source, "must be true or false", value)
        elif value:
            draft.put(target, when_true, source)

    return handle


def _family_flag(name: str):
    def handle(draft: Draft, value: Any, source: str) -> None:
        if not isinstance(value, bool):
            draft.issue(source, "must be true or false", value)
            return
        draft.hints.setdefault("family_flags", {})[KOHYA_FLAG, name] = (value, source)

    return handle


# Component files of split-file models (sd-scripts' FLUX and SD3 scripts) → ModelSpec fields.
_COMPONENTS = {"clip_l": "clip_l", "clip_g": "clip_g", "t5xxl": "t5xxl", "ae": "vae"}


def _component_file(name: str):
    """A component file (FLUX's clip_l, t5xxl, ae; SD3's clip_l, clip_g, t5xxl): loaded beside the
    denoiser file; the script it belongs to is a family hint that the files can overrule."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value in (None, ""):
            return
        if name in alias_names(KOHYA_COMPONENT):
            draft.hints.setdefault("family_flags", {})[KOHYA_COMPONENT, name] = (True, source)
        draft.put(("model", _COMPONENTS[name]), value, source)

    return handle


def _train_data_dir(draft: Draft, value: Any, source: str) -> None:
    draft.put(("datasets", _next_dataset(draft), "folder"), value, source)


def _reg_data_dir(draft: Draft, value: Any, source: str) -> None:
    index = _next_dataset(draft)
    draft.put(("datasets", index, "folder"), value, source)
    draft.put(("datasets", index, "is_reg"), True, source)


def _next_dataset(draft: Draft) -> int:
    return len(draft.data.get("datasets", []))


def _dataset_config(draft: Draft, value: Any, source: str) -> None:
    path = draft.referenced_file(value, source)
    if path is None:
        return
    try:
        doc = document.load(path)
    except SpecError as exc:
        draft.issues.extend(exc.issues)
        return
    sub = Draft(file=str(path), workspace=draft.workspace)
    kohya_dataset.read(doc, sub)
    offset = len(draft.data.get("datasets", []))
    for native, where in sub.origin.items():
        shifted = native
        if native[0] == "datasets" and len(native) > 1:
            shifted = ("datasets", native[1] + offset, *native[2:])  # type: ignore[operator]
        draft.put(shifted, copy.deepcopy(sub.get(native)), f"{path.name}: {where}")
    draft.issues.extend(sub.issues)
    draft.notices.extend(sub.notices)


def _network_module(draft: Draft, value: Any, source: str) -> None:
    # sd-scripts' FLUX and SD3 branches name their LoRA modules per family; the network is the same.
    known = {
        "networks.lora": "lora",
        "networks.lora_flux": "lora",
        "networks.lora_sd3": "lora",
        "lycoris.kohya": None,
    }
    if value is None:
        return
    if not isinstance(value, str) or value not in known:
        draft.issue(source, "not supported by LoRA Pilot", value, accepted=", ".join(known))
    elif known[value]:
        draft.put(("network", "type"), known[value], source)


def _first_lr(value: Any) -> Any:
    """sd-scripts takes one text-encoder LR per encoder (`[1e-5, 2e-5]`); LoRA Pilot one for all."""
    if not isinstance(value, list):
        return value
    if not value:
        raise ValueError("must be a learning rate, or a list of one per text encoder")
    return value[0]


_LORAPLUS_ARGS = {
    "loraplus_lr_ratio": "all",
    "loraplus_unet_lr_ratio": "unet",
    "loraplus_text_encoder_lr_ratio": "text_encoder",
}
# networks/lora.py and lora_flux.py arguments LoRA Pilot does not do; their defaults pass.
_NETWORK_ARGS_UNSUPPORTED: dict[str, Rule] = {
    "rank_dropout": Unsupported("rank dropout", (0,)),
    "module_dropout": Unsupported("module dropout", (0,)),
    "train_t5xxl": Unsupported("T5 LoRAs", (False,)),
    "train_blocks": Unsupported("training only FLUX's single or double blocks", ("all",)),
    "split_qkv": Ignored("FLUX's q/k/v projections are separate layers in the diffusers model already"),
    "verbose": Ignored("the LoRA layers are listed in outputs/<name>/_logs/train.log"),
}


def _network_args(draft: Draft, value: Any, source: str) -> None:
    try:
        args = as_kwargs(value)
    except ValueError as exc:
        draft.issue(source, str(exc), value)
        return
    for key, arg in args.items():
        where = f"{source}[{key}]"
        if key in ("conv_dim", "conv_alpha"):
            draft.put(("network", key), arg, where)
        elif key == "algo" and arg in ("lora", "locon"):
            draft.put(("network", "type"), arg, where)
        elif key == "dora_wd":
            draft.put(("network", "dora"), bool(arg), where)
        elif key in _LORAPLUS_ARGS:
            _loraplus(_LORAPLUS_ARGS[key])(draft, arg, where)
        elif key in _NETWORK_ARGS_UNSUPPORTED:
            apply_table(draft, {key: arg}, _NETWORK_ARGS_UNSUPPORTED, source)
        else:
            draft.issue(
                where,
                "network argument not supported by LoRA Pilot",
                arg,
                accepted="conv_dim, conv_alpha, algo=lora|locon, dora_wd, loraplus_lr_ratio, "
                "loraplus_unet_lr_ratio, loraplus_text_encoder_lr_ratio",
            )


TE_DEFAULT = "train_text_encoder_default"  # hint: (bool, source), applied once the family is known


def _unet_only(draft: Draft, value: Any, source: str) -> None:
    """sd-scripts trains the text encoders too unless this is set; whether a family's encoders can
    be trained is only known once the model files are read, so `false` leaves a hint."""
    if not isinstance(value, bool):
        draft.issue(source, "must be true or false", value)
    elif value:
        draft.put(("network", "train_text_encoder"), False, source)
    else:
        draft.hints[TE_DEFAULT] = (True, source)


def _save_model_as(draft: Draft, value: Any, source: str) -> None:
    if value == "safetensors":
        draft.notice(source, "ignored: LoRAs are always saved as .safetensors")
    else:
        draft.issue(
            source,
            "not supported by LoRA Pilot: LoRAs are saved as .safetensors only",
            value,
            accepted="safetensors",
        )


def _warmup(draft: Draft, value: Any, source: str) -> None:
    if isinstance(value, float) and 0 < value < 1:
        draft.issue(
            source,
            "warmup as a fraction of the run is not supported",
            value,
            hint="give the number of warmup steps",
        )
        return
    draft.put(("training", "warmup_steps"), value, source)


def _sample_prompts(draft: Draft, value: Any, source: str) -> None:
    if isinstance(value, list):
        draft.put(("sample", "prompts"), value, source)
    else:
        read_prompt_file(draft, value, source)


def _model_prediction_type(draft: Draft, value: Any, source: str) -> None:
    if value != "raw":
        draft.issue(
            source, "not supported by LoRA Pilot: the flow target is predicted raw", value, accepted="raw"
        )


def _fp8_base(draft: Draft, value: Any, source: str) -> None:
    """fp8_base (and fp8_base_unet): the denoiser's weights stored in float8, computed in bf16."""
    if not isinstance(value, bool):
        draft.issue(source, "must be true or false", value)
    elif value:
        draft.put(("model", "quantize"), "float8", source)


def _timestep(default: int, target: NativePath):
    """min_timestep/max_timestep; sd-scripts' own bound (0 or 1000) is the same as leaving it out."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == default):
            draft.notice(source, f"{value!r} is sd-scripts' default: every timestep bound stays open")
        else:
            draft.put(target, value, source)

    return handle


def _timestep_sampling(draft: Draft, value: Any, source: str) -> None:
    """sd-scripts' "sigma" draws σ through weighting_scheme (uniform unless that says otherwise)."""
    if value == "sigma":
        draft.notice(source, "sigma: σ is drawn as weighting_scheme says (uniform by default)")
        if draft.get(("training", "timestep_sampling")) is None:
            draft.put(("training", "timestep_sampling"), "uniform", source)
    else:
        draft.put(("training", "timestep_sampling"), value, source)


def _loraplus(which: str):
    """LoRA+ ratios: one ratio for every up matrix here; sd-scripts can split U-Net and text encoder."""

    def handle(draft: Draft, value: Any, source: str) -> None:
        if value is None:
            return
        current = draft.get(("training", "loraplus_lr_ratio"))
        if which == "text_encoder" and current != value:
            draft.issue(
                source,
                "not supported by LoRA Pilot: a separate LoRA+ ratio for the text encoder",
                value,
                hint="give loraplus_lr_ratio first and the same ratio here, or leave this out",
            )
        elif which == "unet" or current is None:
            draft.put(("training", "loraplus_lr_ratio"), value, source)

    return handle


def _sample_every_n_steps(draft: Draft, value: Any, source: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        draft.notice(source, f"{value}: sampling by steps is off, as sd-scripts reads 0 or less")
        return
    draft.put(("sample", "every"), value, source)


def _sample_every_n_epochs(draft: Draft, value: Any, source: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        draft.notice(source, f"{value}: sampling by epochs is off, as sd-scripts reads 0 or less")
        return
    draft.put(("sample", "every_n_epochs"), value, source)


def _weighting_scheme(draft: Draft, value: Any, source: str) -> None:
    """kohya's SD3 `weighting_scheme` mixes σ densities (logit_normal, mode) and loss weights."""
    if value in ("sigma_sqrt", "cosmap", "none"):
        draft.put(("training", "loss_weighting"), value, source)
    elif value in ("logit_normal", "uniform"):
        draft.put(("training", "timestep_sampling"), value, source)
    else:
        draft.issue(
            source,
            "not supported by LoRA Pilot",
            value,
            accepted="none, sigma_sqrt, cosmap, logit_normal, uniform",
        )


TABLE: dict[str, Rule] = {
    # model
    "pretrained_model_name_or_path": To(("model", "path")),
    "family": To(("model", "family")),
    **{flag: _family_flag(flag) for flag in alias_names(KOHYA_FLAG)},
    "v_parameterization": To(("model", "v_parameterization")),
    "vae": To(("model", "vae")),
    **{name: _component_file(name) for name in _COMPONENTS},
    "fp8_base": _fp8_base,
    "fp8_base_unet": _fp8_base,
    "blocks_to_swap": To(("training", "blocks_to_swap")),
    "lowvram": To(("training", "low_vram")),
    "low_vram": To(("training", "low_vram")),
    # network
    "network_module": _network_module,
    "network_type": To(("network", "type")),
    "network_dim": To(("network", "dim")),
    "network_alpha": To(("network", "alpha")),
    "network_dropout": To(("network", "dropout")),
    "network_args": _network_args,
    "network_train_unet_only": _unet_only,
    # optimisation
    "learning_rate": To(("training", "learning_rate")),
    "unet_lr": To(("training", "unet_lr")),
    "text_encoder_lr": To(("training", "text_encoder_lr"), _first_lr),
    "loraplus_lr_ratio": _loraplus("all"),
    "loraplus_unet_lr_ratio": _loraplus("unet"),
    "loraplus_text_encoder_lr_ratio": _loraplus("text_encoder"),
    "optimizer_type": To(("training", "optimizer"), optimizer_name),
    "optimizer_args": To(("training", "optimizer_args"), as_kwargs),
    "lr_scheduler": To(("training", "lr_scheduler")),
    "lr_warmup_steps": _warmup,
    "warmup_steps": _warmup,
    "lr_scheduler_num_cycles": To(("training", "lr_cycles")),
    "lr_scheduler_power": To(("training", "lr_power")),
    "lr_end": To(("training", "lr_end")),
    "max_train_steps": To(("training", "max_steps")),
    "steps": To(("training", "max_steps")),
    "max_train_epochs": To(("training", "epochs")),
    "epochs": To(("training", "epochs")),
    "train_batch_size": To(("training", "batch_size")),
    "batch_size": To(("training", "batch_size")),
    "gradient_accumulation_steps": To(("training", "gradient_accumulation_steps")),
    "mixed_precision": To(("training", "mixed_precision")),
    "gradient_checkpointing": To(("training", "gradient_checkpointing")),
    "sdpa": _flag(("training", "attention"), "sdpa"),
    "xformers": _flag(("training", "attention"), "xformers"),
    "torch_compile": To(("training", "compile")),
    "noise_offset": To(("training", "noise_offset")),
    "min_snr_gamma": To(("training", "min_snr_gamma")),
    "min_timestep": _timestep(0, ("training", "min_timestep")),
    "max_timestep": _timestep(1000, ("training", "max_timestep")),
    "seed": To(("training", "seed")),
    "clip_skip": To(("training", "clip_skip")),
    "max_grad_norm": To(("training", "max_grad_norm")),
    "prior_loss_weight": To(("training", "prior_loss_weight")),
    "cache_text_encoder_outputs": To(("training", "cache_text_encoder_outputs")),
    "cache_text_encoder_outputs_to_disk": To(("training", "cache_text_encoder_outputs")),
    "guidance_scale": To(("training", "guidance_scale")),
    "timestep_sampling": _timestep_sampling,
    "discrete_flow_shift": To(("training", "discrete_flow_shift")),
    "weighting_scheme": _weighting_scheme,
    "logit_mean": To(("training", "logit_mean")),
    "logit_std": To(("training", "logit_std")),
    "sigmoid_scale": To(("training", "logit_std")),
    "model_prediction_type": _model_prediction_type,
    # data
    "train_data_dir": _train_data_dir,
    "reg_data_dir": _reg_data_dir,
    "dataset_config": _dataset_config,
    "resolution": To((DD, "resolutions"), as_resolutions),
    "enable_bucket": To((DD, "bucket", "enabled")),
    "min_bucket_reso": To((DD, "bucket", "min_resolution")),
    "max_bucket_reso": To((DD, "bucket", "max_resolution")),
    "bucket_reso_steps": To((DD, "bucket", "step")),
    "bucket_no_upscale": To((DD, "bucket", "no_upscale")),
    "caption_extension": To((DD, "caption_extension")),
    "caption_extention": To((DD, "caption_extension")),  # sd-scripts keeps this misspelling too
    "caption_prefix": kohya_dataset.caption_prefix((DD, "trigger_word")),
    "shuffle_caption": To((DD, "shuffle_caption")),
    "keep_tokens": To((DD, "keep_tokens")),
    "caption_dropout_rate": To((DD, "caption_dropout")),
    "flip_aug": To((DD, "flip")),
    "cache_latents_to_disk": To((DD, "cache_latents_to_disk")),
    "trigger_word": To((DD, "trigger_word")),
    # sampling
    "sample_prompts": _sample_prompts,
    "sample_every_n_steps": _sample_every_n_steps,
    "sample_every_n_epochs": _sample_every_n_epochs,
    "sample_at_first": To(("sample", "at_start")),
    # saving and output
    "output_dir": To(("output", "folder")),
    "output_name": To(("output", "name")),
    "save_model_as": _save_model_as,
    "save_every_n_steps": To(("save", "every_n_steps")),
    "save_every_n_epochs": To(("save", "every_n_epochs")),
    "save_last_n_steps": lambda d, v, s: None,  # converted after the table (needs the save interval)
    "save_last_n_epochs": lambda d, v, s: None,
    "save_precision": To(("save", "dtype"), precision_name),
    "save_state": To(("save", "save_state")),
    **{name: Ignored(reason) for name, reason in IGNORED.items()},
    **UNSUPPORTED,
}

# sd-scripts' own defaults where they differ from TrainSpec's, for its file forms: (option, field,
# value). `max_train_steps` applies only when max_train_epochs is not given either.
SD_SCRIPTS_DEFAULTS: tuple[tuple[str, NativePath, Any], ...] = (
    ("max_train_steps", ("training", "max_steps"), 1600),
    ("learning_rate", ("training", "learning_rate"), 2e-6),
    ("optimizer_type", ("training", "optimizer"), "adamw"),
    ("mixed_precision", ("training", "mixed_precision"), "no"),
    ("network_dim", ("network", "dim"), 4),
    ("save_precision", ("save", "dtype"), "fp32"),
    ("caption_extension", (DD, "caption_extension"), kohya_dataset.DEFAULT_CAPTION_EXTENSION),
    ("enable_bucket", (DD, "bucket", "enabled"), False),
)
# flux_train_network.py's (its configs name networks.lora_flux): the guidance given to FLUX.1 dev
# while training, and what LoRA Pilot does instead of two defaults it does not share.
FLUX_SCRIPT = "networks.lora_flux"
FLUX_DEFAULTS: tuple[tuple[str, NativePath, Any], ...] = (
    ("guidance_scale", ("training", "guidance_scale"), 3.5),
)
FLUX_DIFFERENCES = {
    "model_prediction_type": "sd-scripts would use sigma_scaled; the flow target is predicted raw here "
    "(as sd-scripts' FLUX examples set it)",
    "timestep_sampling": "sd-scripts would draw σ by weighting_scheme over its shifted schedule (sigma); "
    "the family's own sampling is used here",
}
