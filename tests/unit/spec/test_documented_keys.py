"""Every option the three trainers document (FORMATS.md §2) is mapped, noticed or refused by name.

None of them may come back as "unknown key": that message is reserved for typos.
"""

from __future__ import annotations

import pytest

from lorapilot.spec.draft import Draft
from lorapilot.spec.readers import aitoolkit, diffusion_pipe, kohya

KOHYA = [
    "pretrained_model_name_or_path",
    "train_data_dir",
    "reg_data_dir",
    "dataset_config",
    "output_dir",
    "output_name",
    "save_model_as",
    "network_module",
    "network_dim",
    "network_alpha",
    "network_args",
    "network_dropout",
    "network_train_unet_only",
    "learning_rate",
    "unet_lr",
    "text_encoder_lr",
    "optimizer_type",
    "optimizer_args",
    "lr_scheduler",
    "lr_warmup_steps",
    "lr_scheduler_num_cycles",
    "lr_scheduler_power",
    "max_train_steps",
    "max_train_epochs",
    "train_batch_size",
    "gradient_accumulation_steps",
    "save_every_n_steps",
    "save_every_n_epochs",
    "save_last_n_steps",
    "save_precision",
    "mixed_precision",
    "gradient_checkpointing",
    "sdpa",
    "xformers",
    "cache_latents",
    "cache_latents_to_disk",
    "cache_text_encoder_outputs",
    "noise_offset",
    "min_snr_gamma",
    "v2",
    "v_parameterization",
    "resolution",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "bucket_reso_steps",
    "bucket_no_upscale",
    "caption_extension",
    "shuffle_caption",
    "keep_tokens",
    "seed",
    "clip_skip",
    "max_grad_norm",
    "sample_prompts",
    "sample_every_n_steps",
    "logging_dir",
    "log_with",
    "max_data_loader_n_workers",
    "clip_l",
    "t5xxl",
    "ae",
    "guidance_scale",
    "timestep_sampling",
    "discrete_flow_shift",
    "model_prediction_type",
    "fp8_base",
    "blocks_to_swap",
]
KOHYA_SUBSET = [
    "image_dir",
    "num_repeats",
    "class_tokens",
    "is_reg",
    "caption_extension",
    "keep_tokens",
    "shuffle_caption",
    "caption_dropout_rate",
    "flip_aug",
    "random_crop",
]
KOHYA_DATASET = [
    "resolution",
    "batch_size",
    "enable_bucket",
    "min_bucket_reso",
    "max_bucket_reso",
    "prior_loss_weight",
]
AITK_SECTIONS = {
    "": ["type", "training_folder", "device", "trigger_word"],
    "network": ["type", "linear", "linear_alpha", "conv", "conv_alpha", "network_kwargs"],
    "save": ["dtype", "save_every", "max_step_saves_to_keep", "push_to_hub"],
    "train": [
        "batch_size",
        "steps",
        "gradient_accumulation",
        "gradient_accumulation_steps",
        "train_unet",
        "train_text_encoder",
        "gradient_checkpointing",
        "noise_scheduler",
        "optimizer",
        "optimizer_params",
        "lr",
        "lr_scheduler",
        "lr_scheduler_params",
        "timestep_type",
        "noise_offset",
        "min_snr_gamma",
        "ema_config",
        "dtype",
        "skip_first_sample",
        "disable_sampling",
    ],
    "model": [
        "name_or_path",
        "arch",
        "is_flux",
        "is_xl",
        "is_v3",
        "quantize",
        "low_vram",
        "assistant_lora_path",
    ],
    "sample": [
        "sampler",
        "sample_every",
        "width",
        "height",
        "prompts",
        "neg",
        "seed",
        "walk_seed",
        "guidance_scale",
        "sample_steps",
    ],
}
AITK_DATASET = [
    "folder_path",
    "caption_ext",
    "caption_dropout_rate",
    "shuffle_tokens",
    "keep_tokens",
    "cache_latents_to_disk",
    "resolution",
    "num_repeats",
    "is_reg",
    "network_weight",
    "default_caption",
]
DP_TOP = [
    "output_dir",
    "dataset",
    "epochs",
    "max_steps",
    "micro_batch_size_per_gpu",
    "pipeline_stages",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "warmup_steps",
    "lr_scheduler",
    "save_every_n_epochs",
    "save_every_n_steps",
    "checkpoint_every_n_minutes",
    "activation_checkpointing",
    "save_dtype",
    "caching_batch_size",
    "compile",
]
DP_SECTIONS = {
    "model": [
        "type",
        "checkpoint_path",
        "diffusers_path",
        "transformer_path",
        "dtype",
        "transformer_dtype",
        "timestep_sample_method",
        "flux_shift",
        "unet_lr",
        "text_encoder_1_lr",
        "text_encoder_2_lr",
        "min_snr_gamma",
    ],
    "adapter": ["type", "rank", "dtype", "dropout"],
    "optimizer": ["type", "lr", "betas", "weight_decay", "eps"],
}
DP_DATASET = ["resolutions", "enable_ar_bucket", "min_ar", "max_ar", "num_ar_buckets"]


def _unknown(draft: Draft) -> list[str]:
    return [i.field for i in draft.issues if i.message == "unknown key"]


def _cases() -> list[tuple[str, object, dict]]:
    cases: list[tuple[str, object, dict]] = [("kohya", kohya, {key: 1}) for key in KOHYA]
    cases += [("kohya subset", kohya, {"datasets": [{"subsets": [{key: 1}]}]}) for key in KOHYA_SUBSET]
    cases += [("kohya dataset", kohya, {"datasets": [{key: 1, "subsets": [{}]}]}) for key in KOHYA_DATASET]
    for section, keys in AITK_SECTIONS.items():
        cases += [("ai-toolkit", aitoolkit, {key: 1} if not section else {section: {key: 1}}) for key in keys]
    cases += [("ai-toolkit dataset", aitoolkit, {"datasets": [{key: 1}]}) for key in AITK_DATASET]
    cases += [("diffusion-pipe", diffusion_pipe, {key: 1, "micro_batch_size_per_gpu": 1}) for key in DP_TOP]
    for section, keys in DP_SECTIONS.items():
        cases += [
            (
                "diffusion-pipe",
                diffusion_pipe,
                {section: {key: 1}, "adapter": {}, "model": {}} | {section: {key: 1}},
            )
            for key in keys
        ]
    cases += [
        ("diffusion-pipe dataset", diffusion_pipe, {key: 1, "directory": [{"path": "x"}]})
        for key in DP_DATASET
    ]
    return cases


@pytest.mark.parametrize(
    ("dialect", "reader", "doc"), _cases(), ids=lambda v: str(v) if isinstance(v, dict) else ""
)
def test_documented_option_is_known(dialect, reader, doc):
    draft = Draft(file="config")
    reader.read(doc, draft)
    assert _unknown(draft) == [], f"{dialect}: {doc}"
