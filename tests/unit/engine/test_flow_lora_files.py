"""FLUX/SD3 LoRA files: complete for the full-size architecture, and loaded at the trained strength."""

from __future__ import annotations

import pytest
import torch
from diffusers import DiffusionPipeline, FluxTransformer2DModel
from safetensors import safe_open

from lorapilot.engine.families import LoadedModel, ModelFacts, adapter_for
from lorapilot.engine.families.flux import FluxFacts
from lorapilot.engine.lora import inject
from lorapilot.engine.lora_export import LoraComponent, peft_key_stems, save_peft_folded_lora
from lorapilot.spec.model import NetworkSpec

DOUBLE_BLOCK_LAYERS = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
SINGLE_BLOCK_LAYERS = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out")


def test_flux_lora_keys_cover_every_trained_layer_of_the_full_size_model():
    with torch.device("meta"):
        full = FluxTransformer2DModel(guidance_embeds=True)  # FLUX.1-dev's published architecture
        reference = FluxTransformer2DModel(guidance_embeds=True)
    assert (len(full.transformer_blocks), len(full.single_transformer_blocks)) == (19, 38)
    family = adapter_for("flux-dev")
    model = LoadedModel({"transformer": full}, family.pipeline_class, ModelFacts("flow", family.family.kohya))
    sites = inject(model, family.lora_sites(False), NetworkSpec(dim=16), "transformer")
    stems = peft_key_stems([LoraComponent("transformer", "lora_transformer", sites[0].module)])

    expected = {
        f"transformer.transformer_blocks.{i}.{name}" for i in range(19) for name in DOUBLE_BLOCK_LAYERS
    }
    expected |= {
        f"transformer.single_transformer_blocks.{i}.{name}" for i in range(38) for name in SINGLE_BLOCK_LAYERS
    }
    assert set(stems) == expected and len(stems) == 19 * 12 + 38 * 5
    linears = {name for name, module in reference.named_modules() if isinstance(module, torch.nn.Linear)}
    # ComfyUI maps `transformer.<diffusers module>` onto its own FLUX weights by these names.
    assert {stem.removeprefix("transformer.") for stem in stems} <= linears


@pytest.mark.parametrize("family_name", ["flux-dev", "sd3"])
def test_a_folded_file_loads_in_diffusers_at_the_trained_strength(family_name, tiny_models, tmp_path):
    family = adapter_for(family_name)
    folder = tiny_models[family_name]
    trained = DiffusionPipeline.from_pretrained(folder, dtype=torch.float32).transformer
    facts = (
        FluxFacts("flow", family.family.kohya, timestep_distilled=False, max_sequence_length=512)
        if family_name.startswith("flux")
        else ModelFacts("flow", family.family.kohya)
    )
    model = LoadedModel({"transformer": trained}, family.pipeline_class, facts)
    sites = inject(model, family.lora_sites(False), NetworkSpec(dim=4, alpha=1.5), "transformer")
    generator = torch.Generator().manual_seed(0)
    for param in sites[0].parameters():
        param.data = torch.randn(param.shape, generator=generator) * 0.2
    path = tmp_path / "folded.safetensors"
    save_peft_folded_lora(
        path, [LoraComponent("transformer", "lora_transformer", trained)], {}, torch.float32
    )

    with safe_open(str(path), "pt") as handle:
        keys, header = set(handle.keys()), handle.metadata()
        assert header["lorapilot_alpha_folded"] == "true"
        # What ComfyUI computes for a key pair without alpha: B @ A at strength 1.
        for stem in {k.rsplit(".lora_", 1)[0] for k in keys}:
            layer = trained.get_submodule(stem.removeprefix("transformer."))
            delta = handle.get_tensor(f"{stem}.lora_B.weight") @ handle.get_tensor(f"{stem}.lora_A.weight")
            expected = (
                layer.scaling["default"] * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
            )
            torch.testing.assert_close(delta, expected.detach())
    assert all(k.startswith("transformer.") for k in keys)

    pipe = DiffusionPipeline.from_pretrained(folder, dtype=torch.float32)
    pipe.load_lora_weights(str(path), adapter_name="file")
    assert "file" in pipe.get_list_adapters()["transformer"]
    loaded = LoadedModel({"transformer": pipe.transformer}, family.pipeline_class, facts)
    channels = trained.config.in_channels // (4 if family_name.startswith("flux") else 1)
    latents = torch.randn((1, channels, 8, 8), generator=generator)
    text_width = trained.config.joint_attention_dim
    pooled_width = trained.config.pooled_projection_dim
    conditioning = {
        "prompt_embeds": torch.randn((1, 7, text_width), generator=generator),
        "pooled_prompt_embeds": torch.randn((1, pooled_width), generator=generator),
    }
    timesteps = torch.tensor([400.0])
    with torch.no_grad():
        ours = family.predict(model, latents, timesteps, conditioning, [])
        theirs = family.predict(loaded, latents, timesteps, conditioning, [])
        pipe.set_adapters(["file"], adapter_weights=[0.0])
        base = family.predict(loaded, latents, timesteps, conditioning, [])
    assert (ours - base).abs().max() > 1e-3, "the LoRA must change the prediction for this test to mean much"
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
