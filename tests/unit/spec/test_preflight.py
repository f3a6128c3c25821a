"""`trainpilot validate` checks what a config needs from this machine: a library or a GPU it lacks is
replaced by what works with a notice, or refused with the field and the fix; sample sizes the
model cannot render are refused."""

from __future__ import annotations

import importlib.util

import pytest
import torch

CUDA = torch.cuda.is_available()
XFORMERS = importlib.util.find_spec("xformers") is not None

SD15 = """spec_version: 1
model: {{family: sd15, path: /workspace/models/stable-diffusion-v1-5, quantize: none}}
datasets: [{{folder: my_dataset, resolutions: [512]}}]
output: {{name: checks}}
{extra}
"""
FLUX = """spec_version: 1
model: {{family: flux-schnell, path: /workspace/models/diffusers/FLUX.1-schnell{model}}}
datasets: [{{folder: my_dataset, resolutions: [512]}}]
output: {{name: checks}}
{extra}
"""


def write(tmp_path, template: str, extra: str = "", model: str = ""):
    path = tmp_path / "checks.yaml"
    path.write_text(template.format(extra=extra, model=model))
    return path


@pytest.mark.skipif(XFORMERS and CUDA, reason="xformers runs here")
def test_xformers_where_it_cannot_run_is_a_notice_and_sdpa_is_used(validate, guide_workspace, tmp_path):
    result = validate(write(tmp_path, SD15, "training: {attention: xformers}"), workspace=guide_workspace)
    assert result.rc == 0, result.err
    assert "notice: training.attention: xformers" in result.err and "SDPA attention is used" in result.err


@pytest.mark.skipif(CUDA, reason="fp16 autocast runs on this GPU")
def test_fp16_on_a_cpu_is_a_notice_naming_what_runs_instead(validate, guide_workspace, tmp_path):
    result = validate(write(tmp_path, SD15, "training: {mixed_precision: fp16}"), workspace=guide_workspace)
    assert result.rc == 0, result.err
    assert "notice: training.mixed_precision: fp16 autocast needs a CUDA GPU" in result.err
    assert "autocasts in bf16" in result.err


@pytest.mark.skipif(CUDA, reason="bitsandbytes quantises on this GPU")
@pytest.mark.parametrize("quantize", ["int8", "nf4"])
def test_bitsandbytes_quantization_without_a_gpu_is_refused(quantize, validate, guide_workspace, tmp_path):
    config = write(tmp_path, FLUX, model=f", quantize: {quantize}")
    result = validate(config, workspace=guide_workspace)
    assert result.rc == 2
    assert "model.quantize: bitsandbytes quantises the weights on a CUDA GPU" in result.err
    assert "quantize: float8" in result.err


def test_float8_passes_on_any_machine(validate, guide_workspace, tmp_path):
    spec = validate(write(tmp_path, FLUX, model=", quantize: float8"), workspace=guide_workspace).spec
    assert spec["model"]["quantize"] == "float8"


def test_sample_sides_the_model_cannot_render_are_refused_by_field(validate, guide_workspace, tmp_path):
    sample = "sample: {every: 10, width: 72, prompts: [a cat, {text: a dog, height: 520}]}"
    result = validate(write(tmp_path, FLUX, sample), workspace=guide_workspace)
    assert result.rc == 2
    assert "sample.width: FLUX.1 schnell renders sides that are multiples of 16" in result.err
    assert "use 64 or 80" in result.err
    assert "sample.prompts[1].height: FLUX.1 schnell renders sides that are multiples of 16" in result.err

    assert validate(write(tmp_path, SD15, sample), workspace=guide_workspace).rc == 0  # SD: multiples of 8
