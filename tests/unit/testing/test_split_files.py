"""The split-file writers make what ComfyUI users have, and loading the files gives back the model.

A FLUX transformer in BFL's layout, clip_l / t5xxl (fp16 and fp8 e4m3fn) in transformers' names and
the VAE as `ae.safetensors`; SD3 in Stability's layout (MMDiT and VAE in one file, text encoders
apart, or everything in one file): read back through the family adapters (configs from the shapes,
nothing fetched), they make a pipeline that renders what the diffusers folder renders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline
from safetensors.torch import load_file, save_file

from lorapilot import families
from lorapilot.engine.families import adapter_for
from lorapilot.engine.families.bfl_layout import flux_from_diffusers, flux_to_diffusers
from lorapilot.engine.families.loading import ModelLoadError
from lorapilot.families.recognition import components_in_file, probe_single_file
from lorapilot.spec.model import ModelSpec
from lorapilot.testing.split_files import write_flux_split_files, write_sd3_files

FLUX = (families.FLUX_DEV, families.FLUX_SCHNELL)


@pytest.fixture(scope="module")
def split(tiny_models, tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("split")
    return {f.id: write_flux_split_files(tiny_models[f.id], root / f.id, f"{f.id}.safetensors") for f in FLUX}


def _spec(family: families.Family, paths: dict[str, Path], t5: str = "t5xxl") -> ModelSpec:
    return ModelSpec(
        family=family.id,
        path=str(paths["path"]),
        source="single_file",
        weight_dtype="fp32",
        clip_l=str(paths["clip_l"]),
        t5xxl=str(paths[t5]),
        vae=str(paths["vae"]),
    )


@pytest.mark.parametrize("family", FLUX, ids=str)
def test_the_transformer_file_has_bfl_names_and_is_told_dev_or_schnell(family, split):
    path = split[family.id]["path"]
    keys = set(load_file(path))
    assert {"double_blocks.0.img_attn.qkv.weight", "single_blocks.1.linear1.weight", "img_in.weight"} <= keys
    assert ("guidance_in.in_layer.weight" in keys) == (family is families.FLUX_DEV)
    assert not any(k.startswith(("transformer_blocks.", "x_embedder")) for k in keys)
    assert probe_single_file(path) is family
    assert components_in_file(path) == frozenset()


def test_bfl_layout_round_trips_the_diffusers_weights(tiny_models):
    state = load_file(tiny_models["flux-dev"] / "transformer" / "diffusion_pytorch_model.safetensors")
    back = flux_to_diffusers(flux_from_diffusers(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_the_fp8_t5_file_is_stored_in_float8(split):
    state = load_file(split["flux-dev"]["t5xxl_fp8"])
    assert state["encoder.block.0.layer.0.SelfAttention.q.weight"].dtype == torch.float8_e4m3fn
    assert set(state) == set(load_file(split["flux-dev"]["t5xxl"]))


@pytest.mark.parametrize("family", FLUX, ids=str)
def test_split_files_load_as_the_same_model_and_render_the_same_image(family, split, tiny_models, tmp_path):
    loaded = adapter_for(family.id).load(_spec(family, split[family.id]), torch.float32, tmp_path)
    reference = FluxPipeline.from_pretrained(tiny_models[family.id], dtype=torch.float32)
    for name in ("transformer", "text_encoder", "text_encoder_2", "vae"):
        ours, theirs = loaded[name].state_dict(), reference.components[name].state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name
    assert loaded.facts.timestep_distilled is (family is families.FLUX_SCHNELL)

    def render(pipe: FluxPipeline) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return pipe(
            "a photo", height=64, width=64, num_inference_steps=2, generator=generator, output_type="pt"
        ).images

    ours = render(FluxPipeline(**{k: v for k, v in loaded.components.items() if k in reference.components}))
    assert torch.allclose(ours, render(reference), atol=1e-4)


def test_an_fp8_t5_is_upcast_to_the_compute_dtype(split, tmp_path):
    spec = _spec(families.FLUX_DEV, split["flux-dev"], t5="t5xxl_fp8")
    loaded = adapter_for(spec.family).load(spec, torch.float32, tmp_path)
    assert {p.dtype for p in loaded["text_encoder_2"].parameters()} == {torch.float32}


def test_a_missing_component_file_names_the_field(split, tmp_path):
    spec = _spec(families.FLUX_DEV, split["flux-dev"]).model_copy(update={"t5xxl": None})
    with pytest.raises(ModelLoadError, match=r"model\.t5xxl"):
        adapter_for(spec.family).load(spec, torch.float32, tmp_path)


def test_a_wrong_file_as_a_component_is_refused_by_name(split, tmp_path):
    paths = split["flux-dev"]
    spec = _spec(families.FLUX_DEV, paths).model_copy(update={"clip_l": str(paths["t5xxl"])})
    with pytest.raises(ModelLoadError, match=r"model\.clip_l: .*not a CLIP text encoder"):
        adapter_for(spec.family).load(spec, torch.float32, tmp_path)


SD3_LINE = (families.SD3, families.SD35_LARGE, families.SD35_MEDIUM)


@pytest.fixture(scope="module")
def sd3_line_files(tiny_models, tmp_path_factory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("sd3")
    return {
        f.id: write_sd3_files(tiny_models[f.id], root / f.id, f"{f.id}-tiny.safetensors") for f in SD3_LINE
    }


@pytest.mark.parametrize("family", SD3_LINE, ids=str)
def test_the_sd3_files_have_stabilitys_names_and_tell_sd3_from_sd35(family, sd3_line_files):
    files = sd3_line_files[family.id]
    keys = set(load_file(files["path"]))
    assert "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight" in keys
    assert "model.diffusion_model.joint_blocks.1.context_block.adaLN_modulation.1.weight" in keys
    assert probe_single_file(files["path"]) is family
    assert probe_single_file(files["all_in_one"]) is family
    assert components_in_file(files["path"]) == {"vae"}
    assert components_in_file(files["all_in_one"]) == {"clip_l", "clip_g", "t5xxl", "vae"}


@pytest.mark.parametrize(
    ("family", "layout"),
    [(families.SD3, "split"), (families.SD3, "all_in_one")]
    + [(f, "all_in_one") for f in (families.SD35_LARGE, families.SD35_MEDIUM)],
    ids=str,
)
def test_sd3_files_load_as_the_same_model_and_render_the_same_image(
    family, layout, sd3_line_files, tiny_models, tmp_path
):
    files = sd3_line_files[family.id]
    if layout == "split":
        components = {f: str(files[f]) for f in ("clip_l", "clip_g", "t5xxl")}
        spec = ModelSpec(family=family.id, path=str(files["path"]), source="single_file", **components)
    else:
        spec = ModelSpec(family=family.id, path=str(files["all_in_one"]), source="single_file")
    loaded = adapter_for(family.id).load(spec, torch.float32, tmp_path)
    reference = StableDiffusion3Pipeline.from_pretrained(tiny_models[family.id], dtype=torch.float32)
    for name in ("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae"):
        ours, theirs = loaded[name].state_dict(), reference.components[name].state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs), name

    def render(pipe: StableDiffusion3Pipeline) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return pipe(
            "a photo", height=64, width=64, num_inference_steps=2, generator=generator, output_type="pt"
        ).images

    ours = StableDiffusion3Pipeline(
        **{k: v for k, v in loaded.components.items() if k in reference.components}
    )
    assert torch.allclose(render(ours), render(reference), atol=1e-4)


def test_an_sd3_file_without_its_text_encoders_names_the_missing_field(sd3_line_files, tmp_path):
    spec = ModelSpec(
        family=families.SD3.id, path=str(sd3_line_files[families.SD3.id]["path"]), source="single_file"
    )
    with pytest.raises(ModelLoadError, match=r"model\.clip_l: .*does not hold its clip_l; set model\.clip_l"):
        adapter_for(spec.family).load(spec, torch.float32, tmp_path)


def test_a_scaled_fp8_file_is_refused_rather_than_loaded_unscaled(split, tmp_path):
    paths = split["flux-dev"]
    scaled = tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors"
    state = load_file(paths["t5xxl_fp8"]) | {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}
    save_file(state, str(scaled))
    spec = _spec(families.FLUX_DEV, paths).model_copy(update={"t5xxl": str(scaled)})
    with pytest.raises(ModelLoadError, match=r"model\.t5xxl: .*scaled fp8 file"):
        adapter_for(spec.family).load(spec, torch.float32, tmp_path)
