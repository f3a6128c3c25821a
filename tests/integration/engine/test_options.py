"""Every training option of the SD families, each in a short real run with an effect a user can see."""

from __future__ import annotations

import json
import os

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from lorapilot.data.images import ImageError
from lorapilot.engine import train
from lorapilot.testing.datasets import write_demo_images


def tensors_and_meta(path):
    with safe_open(str(path), "pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()  # noqa: SIM118


def trained_state(result):
    return torch.load(result.lora.parent / "state" / "trainer.pt", weights_only=True)


def _tensor_dtypes(value):
    """Every tensor dtype inside a nested optimizer state (bitsandbytes packs its 8-bit state)."""
    if isinstance(value, torch.Tensor):
        yield value.dtype
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensor_dtypes(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensor_dtypes(item)


def lora_changed(result) -> bool:
    tensors, _ = tensors_and_meta(result.lora)
    return any(float(t.abs().max()) > 0 for k, t in tensors.items() if k.endswith("lora_up.weight"))


@pytest.mark.parametrize(
    ("optimizer", "args", "lr"),
    [
        ("adamw8bit", {"min_8bit_size": 0}, 1e-3),
        ("adamw", {"weight_decay": 0.01}, 1e-3),
        ("adafactor", {}, 1e-3),
        ("prodigy", {}, 1.0),
        ("lion", {}, 1e-4),
        ("lion8bit", {"min_8bit_size": 0}, 1e-4),
        ("sgd", {"momentum": 0.9}, 1e-2),
    ],
)
def test_every_optimizer_trains(optimizer, args, lr, make_spec, workspace):
    spec = make_spec(
        name=f"opt-{optimizer}",
        training={"max_steps": 3, "optimizer": optimizer, "optimizer_args": args, "learning_rate": lr},
    )
    result = train(spec, workspace, show_progress=False)
    assert lora_changed(result)
    if optimizer.endswith("8bit"):
        assert torch.uint8 in set(_tensor_dtypes(trained_state(result)["optimizer"]["state"]))


@pytest.mark.parametrize(("precision", "weights"), [("fp16", "fp32"), ("bf16", "bf16"), ("no", "fp32")])
def test_mixed_precision_modes(precision, weights, make_spec, workspace):
    spec = make_spec(
        name=f"mp-{precision}",
        model={"weight_dtype": weights},
        training={"max_steps": 3, "mixed_precision": precision},
    )
    result = train(spec, workspace, show_progress=False)
    assert lora_changed(result)
    fp16_autocast = precision == "fp16" and torch.cuda.is_available()  # a CPU autocasts fp16 in bf16
    assert (trained_state(result)["scaler"] is not None) == fp16_autocast  # fp16 needs a grad scaler
    assert tensors_and_meta(result.lora)[1]["ss_mixed_precision"] == precision


def test_gradient_checkpointing_gives_the_same_result(make_spec, workspace):
    plain = train(make_spec(name="plain", training={"max_steps": 3}), workspace, show_progress=False)
    ckpt = train(
        make_spec(name="ckpt", training={"max_steps": 3, "gradient_checkpointing": True}),
        workspace,
        show_progress=False,
    )
    a, b = tensors_and_meta(plain.lora)[0], tensors_and_meta(ckpt.lora)[0]
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), atol=1e-4, rtol=1e-3)
    assert tensors_and_meta(ckpt.lora)[1]["ss_gradient_checkpointing"] == "True"


def test_v_prediction_changes_the_objective(make_spec, workspace):
    eps = train(make_spec(name="eps", training={"max_steps": 2}), workspace, show_progress=False)
    vpred = train(
        make_spec(name="vpred", model={"v_parameterization": True}, training={"max_steps": 2}),
        workspace,
        show_progress=False,
    )
    a, b = tensors_and_meta(eps.lora)[0], tensors_and_meta(vpred.lora)[0]
    assert any(not torch.equal(a[k], b[k]) for k in a if k.endswith("lora_up.weight"))


def test_sd2_family_trains_as_v_prediction_with_its_base_version(make_spec, workspace):
    result = train(make_spec("sd2", name="sd2", training={"max_steps": 2}), workspace, show_progress=False)
    meta = tensors_and_meta(result.lora)[1]
    assert (meta["ss_base_model_version"], meta["ss_v2"]) == ("sd_v2", "True")


def test_locon_trains_conv_layers(make_spec, workspace):
    spec = make_spec(
        name="locon",
        network={"dim": 4, "alpha": 4, "conv_dim": 2, "conv_alpha": 1},
        training={"max_steps": 2},
    )
    tensors, meta = tensors_and_meta(train(spec, workspace, show_progress=False).lora)
    conv = [k for k in tensors if "resnets_0_conv1" in k and k.endswith("lora_down.weight")]
    assert conv and tensors[conv[0]].ndim == 4 and tensors[conv[0]].shape[0] == 2
    assert float(tensors[conv[0].replace("lora_down.weight", "alpha")]) == 1.0
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1.0"}


def test_dora_writes_magnitudes(make_spec, workspace):
    spec = make_spec(name="dora", network={"dim": 4, "alpha": 4, "dora": True}, training={"max_steps": 2})
    tensors, meta = tensors_and_meta(train(spec, workspace, show_progress=False).lora)
    assert any(k.endswith(".dora_scale") for k in tensors)
    assert json.loads(meta["ss_network_args"]) == {"dora_wd": "True"}


def test_diffusers_format_on_request(make_spec, workspace):
    spec = make_spec(name="peft", save={"format": "diffusers"}, training={"max_steps": 2})
    tensors, meta = tensors_and_meta(train(spec, workspace, show_progress=False).lora)
    assert all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in tensors)
    assert "lora_adapter_metadata" in meta and meta["ss_network_dim"] == "4"


def test_periodic_saves_keep_the_last_k(make_spec, workspace):
    spec = make_spec(name="keep", training={"max_steps": 4}, save={"every_n_steps": 1, "keep_last": 2})
    result = train(spec, workspace, show_progress=False)
    saves = sorted(p.name for p in result.lora.parent.glob("keep-step*.safetensors"))
    assert saves == ["keep-step00000002.safetensors", "keep-step00000003.safetensors"]
    assert tensors_and_meta(result.lora.parent / saves[0])[1]["ss_steps"] == "2"


def test_samples_are_rendered_at_the_interval_and_at_the_end(make_spec, workspace):
    spec = make_spec(
        name="samples",
        training={"max_steps": 4},
        sample={
            "every": 2,
            "prompts": ["[trigger] a red circle", "a blue square"],
            "steps": 2,
            "width": 64,
            "height": 64,
            "seed": 3,
        },
        datasets=[
            {"folder": "demo", "resolutions": [64], "bucket": {"enabled": False}, "trigger_word": "lpdemo"}
        ],
    )
    result = train(spec, workspace, show_progress=False)
    names = sorted(p.name for p in (result.lora.parent / "samples").iterdir())
    assert names == ["step00000002_0.png", "step00000002_1.png", "step00000004_0.png", "step00000004_1.png"]
    assert Image.open(result.lora.parent / "samples" / names[0]).size == (64, 64)


def test_early_stopping_ends_a_plateaued_run(make_spec, workspace):
    spec = make_spec(
        name="early",
        training={"max_steps": 50, "early_stopping": {"patience": 2, "min_delta": 10.0, "every": 1}},
    )
    result = train(spec, workspace, show_progress=False)
    assert result.stopped_early and result.steps == 3 and result.lora.is_file()
    assert "early stopping at step 3" in (result.lora.parent / "_logs" / "train.log").read_text()


def test_epochs_accumulation_and_clipping(make_spec, workspace):
    spec = make_spec(
        name="epochs",
        training={"max_steps": None, "epochs": 2, "gradient_accumulation_steps": 2, "max_grad_norm": 0.1},
    )
    result = train(spec, workspace, show_progress=False)
    meta = tensors_and_meta(result.lora)[1]
    # 6 images × 2 repeats at batch 2 = 6 batches per epoch = 3 updates per epoch.
    assert (result.steps, meta["ss_num_epochs"], meta["ss_gradient_accumulation_steps"]) == (6, "2", "2")


def test_captions_trigger_class_tokens_and_regularization(make_spec, workspace):
    write_demo_images(workspace.images / "3_uncaptioned", 2, caption=None, seed=3)
    write_demo_images(workspace.reg / "1_shape", 2, caption="a shape", seed=4)
    spec = make_spec(
        name="captions",
        training={"max_steps": 3, "prior_loss_weight": 0.5},
        datasets=[
            {
                "folder": "demo",
                "resolutions": [64],
                "bucket": {"enabled": False},
                "trigger_word": "lpdemo",
                "shuffle_caption": True,
                "keep_tokens": 1,
                "caption_dropout": 0.3,
                "flip": True,
                "weight": 2.0,
            },
            {
                "folder": "uncaptioned",
                "resolutions": [64, 96],
                "class_tokens": "a thing",
                "bucket": {"step": 32},
            },
            {"folder": "shape", "is_reg": True, "resolutions": [64]},
        ],
    )
    result = train(spec, workspace, show_progress=False)
    meta = tensors_and_meta(result.lora)[1]
    assert (meta["ss_num_train_images"], meta["ss_num_reg_images"]) == ("24", "2")
    assert meta["modelspec.trigger_phrase"] == "lpdemo"
    assert len(json.loads(meta["ss_bucket_info"])["buckets"]) == 2


def test_single_file_model_vae_override_low_vram_ema_and_clip_skip(make_spec, workspace):
    spec = make_spec(
        name="misc",
        model={
            "path": "/workspace/models/diffusers/tiny-sd15.safetensors",
            "vae": "/workspace/models/diffusers/tiny-sd15/vae",
        },
        training={"max_steps": 3, "low_vram": True, "ema_decay": 0.5, "clip_skip": 2},
        datasets=[
            {
                "folder": "demo",
                "resolutions": [64],
                "bucket": {"enabled": False},
                "cache_latents_to_disk": False,
            }
        ],
    )
    assert spec.model.source == "single_file"
    result = train(spec, workspace, show_progress=False)
    meta = tensors_and_meta(result.lora)[1]
    assert (meta["ss_vae_name"], meta["ss_clip_skip"]) == ("vae", "2")
    assert not any(workspace.latent_cache.rglob("*.safetensors"))  # latents kept in memory only
    assert "ema" in trained_state(result)["extra"]


def test_a_corrupt_image_fails_the_run_naming_it_or_is_skipped_on_request(make_spec, workspace):
    write_demo_images(workspace.images / "1_broken", 3, seed=9)
    (workspace.images / "1_broken" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    dataset = [{"folder": "broken", "resolutions": [64], "bucket": {"enabled": False}}]
    with pytest.raises(ImageError, match=r"bad\.png"):
        train(
            make_spec(name="strict", datasets=dataset, training={"max_steps": 1}),
            workspace,
            show_progress=False,
        )
    spec = make_spec(name="lenient", datasets=dataset, training={"max_steps": 1, "skip_bad_images": True})
    result = train(spec, workspace, show_progress=False)
    assert "bad.png" in (result.lora.parent / "_logs" / "train.log").read_text()


def test_fp16_weights(make_spec, workspace):
    spec = make_spec(
        name="half", model={"weight_dtype": "fp16"}, training={"max_steps": 3, "mixed_precision": "fp16"}
    )
    assert lora_changed(train(spec, workspace, show_progress=False))


@pytest.mark.slow
@pytest.mark.skipif(
    not torch.cuda.is_available() and not os.environ.get("LORAPILOT_RUN_SLOW"),
    reason="compiling the UNet takes minutes on 2 CPU cores; runs on CUDA or with LORAPILOT_RUN_SLOW=1",
)
def test_torch_compile_keeps_key_names(make_spec, workspace):
    result = train(
        make_spec(name="compiled", training={"max_steps": 3, "compile": True}), workspace, show_progress=False
    )
    assert lora_changed(result)
    tensors, _ = tensors_and_meta(result.lora)
    assert not any("_orig_mod" in k for k in tensors)  # compiled modules keep their key names


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="xformers attention runs on CUDA only")
def test_xformers_attention(make_spec, workspace):
    spec = make_spec(name="xformers", training={"max_steps": 2, "attention": "xformers"})
    assert lora_changed(train(spec, workspace, show_progress=False))
