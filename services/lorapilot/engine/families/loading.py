"""Loading a diffusers pipeline from a folder, a single checkpoint file or a hub id.

Shared by the families; each passes its own pipeline class. Nothing is fetched unless the spec
names a hub id; a single file needs its components' configs, which come from a diffusers folder of
the same name beside it, or from the released model's configs that the project carries.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DiffusionPipeline

from lorapilot.engine.families.clip_vocab import ClipVocabMissingError
from lorapilot.engine.families.reference_configs import materialize
from lorapilot.errors import LoraPilotError
from lorapilot.spec.model import ModelSpec

log = logging.getLogger(__name__)


class ModelLoadError(LoraPilotError, RuntimeError):
    """The model named by the spec cannot be loaded; the message names the path and the fix."""


def load_pipeline(
    spec: ModelSpec,
    pipeline_class: type[DiffusionPipeline],
    dtype: torch.dtype,
    config_cache: Path,
    reference: str | None = None,
    **kwargs: Any,
) -> DiffusionPipeline:
    """The pipeline named by `spec.path`, in `dtype`, on the CPU.

    `config_cache` is where the component configs of a single-file checkpoint are written;
    `reference` names the released model whose configs describe one (`reference_configs.MODELS`).
    """
    try:
        if spec.source == "single_file":
            pipe = pipeline_class.from_single_file(
                spec.path,
                config=str(single_file_config(spec, config_cache, reference)),
                dtype=dtype,
                local_files_only=True,
                **kwargs,
            )
        else:
            pipe = pipeline_class.from_pretrained(
                spec.path, dtype=dtype, local_files_only=spec.source != "hub", **kwargs
            )
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the model at {spec.path}: {exc}") from exc
    if spec.vae:
        pipe.vae = load_vae(spec.vae, dtype)
    return pipe


def single_file_config(spec: ModelSpec, config_cache: Path, reference: str | None) -> Path:
    """The diffusers folder describing a single-file checkpoint's components.

    A diffusers folder of the same name beside the file wins (it may describe a fine-tune with
    its own configs); otherwise the configs of the released model `reference` are used.
    """
    beside = Path(spec.path).with_suffix("")
    if (beside / "model_index.json").is_file():
        return beside
    if reference is None:
        raise ModelLoadError(
            f"{Path(spec.path).name}: a single-file {spec.family} checkpoint needs its diffusers folder "
            f"(model_index.json, configs, tokenizers) at {beside}, or use a diffusers folder"
        )
    try:
        return materialize(reference, config_cache / reference)
    except ClipVocabMissingError as exc:
        raise ModelLoadError(str(exc)) from exc


def load_vae(path_or_id: str, dtype: torch.dtype) -> AutoencoderKL:
    path = Path(path_or_id)
    try:
        if path.is_file():
            return AutoencoderKL.from_single_file(str(path), dtype=dtype, local_files_only=True)
        return AutoencoderKL.from_pretrained(path_or_id, dtype=dtype, local_files_only=path.exists())
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the VAE at {path_or_id}: {exc}") from exc


def prediction_type(pipe: DiffusionPipeline, v_parameterization: bool) -> str:
    if v_parameterization:
        return "v_prediction"
    return str(getattr(pipe.scheduler.config, "prediction_type", "epsilon") or "epsilon")
