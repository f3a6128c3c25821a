"""The optimizer's param groups: each LoRA site at its LR, LoRA+ up matrices at ratio × that LR."""

from __future__ import annotations

import torch

from lorapilot.engine.families.base import LoadedModel, LoraSite, ModelFacts
from lorapilot.engine.lora import inject
from lorapilot.engine.optim import build_optimizer, lora_param_groups
from lorapilot.spec.model import NetworkSpec, TrainingSpec


def injected_sites(network: NetworkSpec | None = None):
    """A small denoiser and text encoder with LoRA injected the way a run injects it."""
    unet = torch.nn.ModuleDict({"to_q": torch.nn.Linear(8, 8), "to_k": torch.nn.Linear(8, 8)})
    text = torch.nn.ModuleDict({"fc1": torch.nn.Linear(8, 16), "fc2": torch.nn.Linear(16, 8)})
    model = LoadedModel({"unet": unet, "text_encoder": text}, object, ModelFacts("epsilon", None))
    sites = [
        LoraSite("unet", "lora_unet", False, ("to_q", "to_k")),
        LoraSite("text_encoder", "lora_te", True, ("fc1", "fc2")),
    ]
    return inject(model, sites, network or NetworkSpec(dim=2), "unet")


def lrs_by_group(optimizer: torch.optim.Optimizer) -> dict[str, tuple[float, int]]:
    return {g["name"]: (g["lr"], len(g["params"])) for g in optimizer.param_groups}


def test_without_loraplus_each_site_is_one_group_at_its_own_lr():
    training = TrainingSpec(learning_rate=1e-4, unet_lr=2e-4, text_encoder_lr=5e-5)
    optimizer = build_optimizer("adamw", lora_param_groups(injected_sites(), training), {})
    assert lrs_by_group(optimizer) == {"unet": (2e-4, 4), "text_encoder": (5e-5, 4)}


def test_loraplus_puts_the_up_matrices_of_every_site_at_ratio_times_its_lr():
    training = TrainingSpec(learning_rate=1e-4, text_encoder_lr=5e-5, loraplus_lr_ratio=16)
    sites = injected_sites()
    optimizer = build_optimizer("adamw", lora_param_groups(sites, training), {})
    assert lrs_by_group(optimizer) == {
        "unet": (1e-4, 2),
        "unet.lora_up": (16e-4, 2),
        "text_encoder": (5e-5, 2),
        "text_encoder.lora_up": (16 * 5e-5, 2),
    }
    up = {id(p) for s in sites for n, p in s.named_parameters() if ".lora_B." in n}
    for group in optimizer.param_groups:
        assert all((id(p) in up) == group["name"].endswith(".lora_up") for p in group["params"])
    # every trainable LoRA parameter is in exactly one group
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for s in sites for p in s.parameters())


def test_dora_magnitudes_stay_at_the_base_lr_under_loraplus():
    sites = injected_sites(NetworkSpec(dim=2, dora=True))
    groups = lora_param_groups(sites, TrainingSpec(learning_rate=1e-4, loraplus_lr_ratio=4))
    names = {id(p): n for s in sites for n, p in s.named_parameters()}
    up_group = next(g for g in groups if g["name"] == "unet.lora_up")
    assert all(".lora_B." in names[id(p)] for p in up_group["params"])
    base = next(g for g in groups if g["name"] == "unet")
    assert any("lora_magnitude_vector" in names[id(p)] for p in base["params"])
