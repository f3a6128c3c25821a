"""LoRA files written from peft-injected tiny models load back as exactly what was trained.

Every round trip goes through a real loader: a fresh diffusers pipeline with `load_lora_weights`, or
ComfyUI's merge math re-implemented below where diffusers cannot read the format (kohya DoRA).
peft starts lora_B at zero, a LoRA that changes nothing; the weights here are random, so a wrong key,
alpha or scale shows up as a different output.
"""

from __future__ import annotations

import hashlib
import json
import resource
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch.nn import Conv2d

from lorapilot.engine.lora_export import (
    DIFFUSERS_METADATA_KEY,
    LoraComponent,
    LoraExportError,
    kohya_state_dict,
    save_diffusers_lora,
    save_kohya_lora,
    save_lora_file,
)
from lorapilot.engine.model_hash import model_hashes, safetensors_hashes

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
CONV_TARGETS = ["conv1", "conv2", "conv_shortcut", "proj_in", "proj_out", "conv"]
RANK, ALPHA = 4, 2.0  # alpha != rank: a loader that assumes alpha = rank gets twice the strength
CONV_RANK, CONV_ALPHA = 2, 3.0
PIPELINES = {"sd15": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}
TEXT_ENCODERS = {
    "sd15": {"text_encoder": "lora_te"},
    "sdxl": {"text_encoder": "lora_te1", "text_encoder_2": "lora_te2"},
}
TOKEN_IDS = torch.tensor([[3, 10, 20, 30, 40, 5]])
ADAPTER = "exported"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from intra-op threads, and on two shared cores OpenMP's spin-waiting
    made this module 3x slower (80 s instead of 29 s) while another test process ran."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- helpers ------------------------------------------------------------------------------------------------


def _randomize_lora(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if "lora_magnitude_vector" in name:  # keep magnitudes near the norms DoRA starts from
                param.mul_(1 + 0.1 * noise)
            elif "lora_" in name:
                param.copy_(0.1 * noise)


def _unet_output(unet: UNet2DConditionModel) -> torch.Tensor:
    config = unet.config
    generator = torch.Generator().manual_seed(1)
    extra = {}
    if config.addition_embed_type == "text_time":  # SDXL: pooled text embeds + 6 time ids
        text_dim = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, text_dim, generator=generator),
            "time_ids": torch.randn(1, 6, generator=generator),
        }
    with torch.no_grad():
        return unet(
            torch.randn(1, 4, 8, 8, generator=generator),
            10,
            encoder_hidden_states=torch.randn(1, 5, config.cross_attention_dim, generator=generator),
            **extra,
        ).sample


def _outputs(pipe: object, names: list[str]) -> dict[str, torch.Tensor]:
    outputs = {"unet": _unet_output(pipe.unet)}
    with torch.no_grad():
        for name in names:
            outputs[name] = getattr(pipe, name)(TOKEN_IDS).last_hidden_state
    return outputs


def _assert_same(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=1e-4, atol=1e-5, msg=name)


def _fresh_pipeline_with(family: str, folder: Path, lora: Path) -> object:
    pipe = PIPELINES[family].from_pretrained(folder)
    pipe.load_lora_weights(str(lora), adapter_name=ADAPTER)
    return pipe


def _inject(model: torch.nn.Module, targets: list[str], seed: int, **options: object) -> None:
    inject_adapter_in_model(LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=targets, **options), model)
    _randomize_lora(model, seed)


def _locon_options(conv_targets: list[str]) -> dict[str, object]:
    """Conv layers with their own rank and alpha, as LoCon trains them."""
    return {
        "rank_pattern": dict.fromkeys(conv_targets, CONV_RANK),
        "alpha_pattern": dict.fromkeys(conv_targets, CONV_ALPHA),
    }


def _merge_like_comfyui(unet: UNet2DConditionModel, tensors: dict[str, torch.Tensor]) -> None:
    """Apply a kohya UNet LoRA to the base weights the way ComfyUI's weight adapters do, strength 1.

    LoRA: W + alpha/rank · up.flatten(1) @ down.flatten(1), reshaped to W (conv down k×k, up 1×1).
    DoRA with an output-axis `dora_scale` (shape[0] == out): (W + ΔW) · dora_scale / ‖W + ΔW‖ per output
    row, the DoRA definition as LyCORIS `wd_on_out` and ComfyUI PR #15458 compute it.
    """
    modules = {f"lora_unet_{path.replace('.', '_')}": module for path, module in unet.named_modules()}
    with torch.no_grad():
        for key in [key for key in tensors if key.endswith(".lora_down.weight")]:
            name = key.removesuffix(".lora_down.weight")
            down, up = tensors[key], tensors[f"{name}.lora_up.weight"]
            weight = modules[name].weight
            delta = (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
            merged = weight + delta * tensors[f"{name}.alpha"].item() / down.shape[0]
            scale = tensors.get(f"{name}.dora_scale")
            if scale is not None:
                assert scale.shape[0] == weight.shape[0], "ComfyUI would read this as an input-axis scale"
                norm = merged.reshape(weight.shape[0], -1).norm(dim=1).reshape(scale.shape)
                merged = merged * scale / norm
            weight.copy_(merged)


@dataclass
class Trained:
    """A tiny pipeline whose UNet and text encoders carry random LoRA layers; outputs before and after."""

    family: str
    folder: Path
    pipe: object
    components: list[LoraComponent]
    base: dict[str, torch.Tensor]
    trained: dict[str, torch.Tensor]

    @property
    def text_encoders(self) -> list[str]:
        return list(TEXT_ENCODERS[self.family])


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def trained(request: pytest.FixtureRequest, tiny_models: dict[str, Path]) -> Trained:
    family = request.param
    pipe = PIPELINES[family].from_pretrained(tiny_models[family])
    names = list(TEXT_ENCODERS[family])
    base = _outputs(pipe, names)
    _inject(pipe.unet, UNET_TARGETS, seed=0)
    components = [LoraComponent("unet", "lora_unet", pipe.unet)]
    for seed, (name, prefix) in enumerate(TEXT_ENCODERS[family].items(), start=1):
        _inject(getattr(pipe, name), TEXT_TARGETS, seed=seed)
        components.append(LoraComponent(name, prefix, getattr(pipe, name)))
    return Trained(family, tiny_models[family], pipe, components, base, _outputs(pipe, names))


@pytest.fixture
def locon_unet(tiny_models: dict[str, Path]) -> tuple[UNet2DConditionModel, torch.Tensor]:
    """SD1.5's UNet (conv proj_in/proj_out) with LoCon layers; with its trained output."""
    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    _inject(unet, UNET_TARGETS + CONV_TARGETS, seed=0, **_locon_options(CONV_TARGETS))
    return unet, _unet_output(unet)


# -- kohya format ------------------------------------------------------------------------------------------


def test_kohya_file_loads_in_diffusers_at_trained_strength(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_kohya_lora(path, trained.components, {"ss_network_dim": str(RANK)}, torch.float32)

    pipe = _fresh_pipeline_with(trained.family, trained.folder, path)

    assert pipe.get_list_adapters() == {c.name: [ADAPTER] for c in trained.components}
    loaded = _outputs(pipe, trained.text_encoders)
    _assert_same(loaded, trained.trained)
    assert all((loaded[n] - trained.base[n]).abs().max() > 1e-2 for n in loaded), "the LoRA changes nothing"
    pipe.set_adapters([ADAPTER], adapter_weights=[0.0])
    _assert_same(_outputs(pipe, trained.text_encoders), trained.base)


def test_kohya_keys_cover_every_trained_module(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_kohya_lora(path, trained.components, {"ss_network_dim": str(RANK), "ss_note": "kept"}, torch.float32)
    tensors = load_file(path)
    prefixes = tuple(f"{c.kohya_prefix}_" for c in trained.components)

    assert all(key.startswith(prefixes) for key in tensors)
    assert all(key.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for key in tensors)
    for component in trained.components:
        peft_modules = [
            k for k in get_peft_model_state_dict(component.module) if k.endswith(".lora_A.weight")
        ]
        prefix = f"{component.kohya_prefix}_"
        downs = [k for k in tensors if k.startswith(prefix) and k.endswith(".lora_down.weight")]
        assert len(downs) == len(peft_modules) > 0, component.name
    downs = [key for key in tensors if key.endswith(".lora_down.weight")]
    assert len(tensors) == 3 * len(downs)  # down, up and alpha per module, nothing else
    for key in downs:
        name = key.removesuffix(".lora_down.weight")
        assert tensors[key].shape[0] == RANK and tensors[f"{name}.lora_up.weight"].shape[1] == RANK
        assert tensors[f"{name}.alpha"].shape == () and tensors[f"{name}.alpha"].item() == ALPHA
    assert any(
        key.startswith(f"{prefixes[1]}text_model_encoder_layers_0_self_attn_out_proj") for key in tensors
    )
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    assert header["ss_note"] == "kept"
    assert (header["sshs_model_hash"], header["sshs_legacy_hash"]) == model_hashes(path)


def test_kohya_weights_take_the_save_dtype_but_alphas_stay_exact(trained: Trained) -> None:
    tensors = kohya_state_dict(trained.components, torch.bfloat16)

    assert {t.dtype for k, t in tensors.items() if not k.endswith(".alpha")} == {torch.bfloat16}
    assert {(t.dtype, t.item()) for k, t in tensors.items() if k.endswith(".alpha")} == {
        (torch.float32, ALPHA)
    }


def test_a_model_without_lora_layers_is_refused(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")

    with pytest.raises(LoraExportError, match="unet has no LoRA layers"):
        save_kohya_lora(
            tmp_path / "empty.safetensors", [LoraComponent("unet", "lora_unet", unet)], {}, torch.float32
        )
    assert list(tmp_path.iterdir()) == []


# -- diffusers format -----------------------------------------------------------------------------------


def test_diffusers_file_loads_at_trained_strength(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_diffusers_lora(path, trained.components, {"ss_network_dim": str(RANK)}, torch.float32)

    pipe = _fresh_pipeline_with(trained.family, trained.folder, path)

    assert pipe.get_list_adapters() == {c.name: [ADAPTER] for c in trained.components}
    _assert_same(_outputs(pipe, trained.text_encoders), trained.trained)
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
        keys = set(handle.keys())
    adapter_metadata = json.loads(header[DIFFUSERS_METADATA_KEY])
    for component in trained.components:
        assert adapter_metadata[f"{component.name}.r"] == RANK
        assert adapter_metadata[f"{component.name}.lora_alpha"] == ALPHA
        ours = {k.removeprefix(f"{component.name}.") for k in keys if k.startswith(f"{component.name}.")}
        peft_keys = get_peft_model_state_dict(component.module)
        if component.name != "unet":  # the spelling transformers 4 and older diffusers need
            assert all(key.startswith("text_model.") for key in ours)
        assert {k.removeprefix("text_model.") for k in ours} == {
            k.removeprefix("text_model.") for k in peft_keys
        }


# -- LoCon -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("save", [save_kohya_lora, save_diffusers_lora], ids=["kohya", "diffusers"])
def test_locon_file_loads_in_diffusers(
    locon_unet: tuple, tiny_models: dict[str, Path], tmp_path: Path, save
) -> None:
    unet, expected = locon_unet
    path = tmp_path / "locon.safetensors"
    save(path, [LoraComponent("unet", "lora_unet", unet)], {}, torch.float32)

    pipe = _fresh_pipeline_with("sd15", tiny_models["sd15"], path)

    assert pipe.get_list_adapters() == {"unet": [ADAPTER]}
    torch.testing.assert_close(_unet_output(pipe.unet), expected, rtol=1e-4, atol=1e-5)


def test_locon_keys_have_kohya_conv_shapes_and_merge_like_comfyui(
    locon_unet: tuple, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    unet, expected = locon_unet
    path = tmp_path / "locon.safetensors"
    save_kohya_lora(path, [LoraComponent("unet", "lora_unet", unet)], {}, torch.float32)
    tensors = load_file(path)
    base = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    convs = {f"lora_unet_{p.replace('.', '_')}": m for p, m in base.named_modules() if isinstance(m, Conv2d)}

    trained_convs = [name for name in convs if f"{name}.lora_down.weight" in tensors]
    kinds = {name.rsplit("_", 1)[-1] for name in trained_convs}
    assert kinds >= {
        "conv1",
        "conv2",
        "shortcut",
        "in",
        "out",
        "conv",
    }  # resnets, proj_in/out, down/upsamplers
    for name in trained_convs:
        conv = convs[name]
        assert tensors[f"{name}.lora_down.weight"].shape == (CONV_RANK, conv.in_channels, *conv.kernel_size)
        assert tensors[f"{name}.lora_up.weight"].shape == (conv.out_channels, CONV_RANK, 1, 1)
        assert tensors[f"{name}.alpha"].item() == CONV_ALPHA
    _merge_like_comfyui(base, tensors)
    torch.testing.assert_close(_unet_output(base), expected, rtol=1e-4, atol=1e-5)


def test_rslora_alpha_gives_the_trained_scale(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """rsLoRA scales by alpha / sqrt(rank); the kohya alpha must make alpha / rank the same number."""
    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    _inject(unet, UNET_TARGETS, seed=0, use_rslora=True)
    path = tmp_path / "rslora.safetensors"
    save_kohya_lora(path, [LoraComponent("unet", "lora_unet", unet)], {}, torch.float32)
    tensors = load_file(path)

    assert {t.item() for k, t in tensors.items() if k.endswith(".alpha")} == {ALPHA * RANK**0.5}
    base = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    _merge_like_comfyui(base, tensors)
    torch.testing.assert_close(_unet_output(base), _unet_output(unet), rtol=1e-4, atol=1e-5)


# -- DoRA ------------------------------------------------------------------------------------------------


def test_dora_scale_is_the_peft_magnitude_on_the_output_axis(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """kohya DoRA: `dora_scale` is peft's magnitude shaped (out, 1, …), ComfyUI's output-axis layout.

    diffusers 0.42 drops `dora_scale` keys from kohya files (it warns and loads a plain LoRA), so the
    kohya file is checked against ComfyUI's math, and the diffusers file through diffusers.
    """
    unet = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    _inject(unet, [*UNET_TARGETS, "conv1"], seed=0, use_dora=True, **_locon_options(["conv1"]))
    expected = _unet_output(unet)
    components = [LoraComponent("unet", "lora_unet", unet)]
    kohya, diffusers_file = tmp_path / "kohya.safetensors", tmp_path / "diffusers.safetensors"
    save_kohya_lora(kohya, components, {}, torch.float32)
    save_diffusers_lora(diffusers_file, components, {}, torch.float32)
    tensors = load_file(kohya)

    magnitudes = {
        k: v for k, v in get_peft_model_state_dict(unet).items() if k.endswith("lora_magnitude_vector")
    }
    assert len(magnitudes) == sum(key.endswith(".dora_scale") for key in tensors) > 0
    for key, magnitude in magnitudes.items():
        scale = tensors[
            f"lora_unet_{key.removesuffix('.lora_magnitude_vector').replace('.', '_')}.dora_scale"
        ]
        dims = 4 if "conv1" in key else 2
        assert scale.shape == (magnitude.numel(), *[1] * (dims - 1))
        torch.testing.assert_close(scale.flatten(), magnitude.flatten())
    base = UNet2DConditionModel.from_pretrained(tiny_models["sd15"] / "unet")
    _merge_like_comfyui(base, tensors)
    torch.testing.assert_close(_unet_output(base), expected, rtol=1e-4, atol=1e-5)
    pipe = _fresh_pipeline_with("sd15", tiny_models["sd15"], diffusers_file)
    torch.testing.assert_close(_unet_output(pipe.unet), expected, rtol=1e-4, atol=1e-5)


# -- atomic file writing -------------------------------------------------------------------------------


def test_saved_file_is_readable_by_other_users(tmp_path: Path) -> None:
    path = tmp_path / "lora.safetensors"
    save_lora_file(path, {"x": torch.ones(3)}, {"ss_seed": "1"})

    assert path.stat().st_mode & 0o777 == 0o644
    assert torch.equal(load_file(path)["x"], torch.ones(3))


@pytest.fixture
def previous_file(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "lora.safetensors"
    save_lora_file(path, {"x": torch.ones(3)}, {"ss_seed": "1"})
    return path, path.read_bytes()


def test_disk_full_midway_keeps_the_previous_file(previous_file: tuple[Path, bytes]) -> None:
    path, before = previous_file
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # a file-size limit makes the write fail after 64 KiB, as a full disk would (EFBIG instead of ENOSPC)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(Exception, match="File too large"):
            save_lora_file(path, {"x": torch.ones(1_000_000)}, {"ss_seed": "2"})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)

    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


def test_tensors_safetensors_refuses_keep_the_previous_file(previous_file: tuple[Path, bytes]) -> None:
    path, before = previous_file
    shared = torch.ones(4)

    with pytest.raises(RuntimeError, match="share memory"):
        save_lora_file(path, {"a": shared, "b": shared}, {})

    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.parametrize("metadata", [{"ss_epoch": 3}, {"ss_args": {"a": 1}}, {1: "x"}])
def test_non_string_metadata_is_refused_before_writing(
    previous_file: tuple[Path, bytes], metadata: dict
) -> None:
    path, before = previous_file
    key = next(iter(metadata))

    with pytest.raises(TypeError, match=repr(key)):
        save_lora_file(path, {"x": torch.zeros(3)}, metadata)

    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


# -- kohya's model hashes ------------------------------------------------------------------------------


def _kohya_hashes_by_hand(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> tuple[str, str]:
    """sd-scripts `precalculate_safetensors_hashes`: serialize with the ss_* metadata only, then hash."""
    blob = save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    header_length = int.from_bytes(blob[:8], "little")
    return (
        hashlib.sha256(blob[8 + header_length :]).hexdigest(),
        hashlib.sha256(blob[0x100000 : 0x100000 + 0x10000]).hexdigest()[:8],
    )


def test_model_hashes_match_kohya(tmp_path: Path) -> None:
    tensors = {  # over 1 MiB, so the legacy hash covers real tensor bytes
        "lora_unet_a.lora_down.weight": torch.linspace(-1, 1, 320_000).reshape(4, 80_000),
        "lora_unet_a.alpha": torch.tensor(2.0),
    }
    metadata = {"ss_network_dim": "4", "ss_seed": "42", "modelspec.title": "my lora"}
    path = tmp_path / "lora.safetensors"
    save_lora_file(path, tensors, {**metadata, "sshs_model_hash": "stale"})

    expected = _kohya_hashes_by_hand(tensors, metadata)
    assert model_hashes(path) == safetensors_hashes(tensors, metadata) == expected
    saved = path.read_bytes()  # the model hash is also the hash of the saved file's own tensor region
    assert hashlib.sha256(saved[8 + int.from_bytes(saved[:8], "little") :]).hexdigest() == expected[0]
    assert expected[1] != hashlib.sha256(b"").hexdigest()[:8]
    assert safetensors_hashes(tensors, {**metadata, "modelspec.title": "renamed"}) == expected
    model_hash, legacy_hash = safetensors_hashes(tensors, {**metadata, "ss_epoch": "10"})
    assert model_hash == expected[0] and legacy_hash != expected[1]  # a longer header moves the legacy window
