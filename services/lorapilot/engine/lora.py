"""Putting LoRA layers into a family's models with peft, with kohya's meaning of dim and alpha.

kohya scales a LoRA by alpha / dim, which is exactly peft's `lora_alpha / r` (without rsLoRA), so the
numbers pass straight through. LoCon gives conv layers their own rank and alpha through peft's
rank/alpha patterns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict

from lorapilot.engine.families.base import LoadedModel, LoraSite
from lorapilot.spec.model import NetworkSpec

log = logging.getLogger(__name__)
ADAPTER = "default"


@dataclass(frozen=True)
class InjectedSite:
    site: LoraSite
    module: torch.nn.Module
    config: LoraConfig

    def named_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The trainable LoRA parameters by peft name (`…lora_A.default.weight`, `…lora_B…`)."""
        return [(n, p) for n, p in self.module.named_parameters() if "lora_" in n and p.requires_grad]

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for _, p in self.named_parameters()]


def lora_config(site: LoraSite, network: NetworkSpec, *, is_denoiser: bool) -> LoraConfig:
    targets = list(network.target_modules) if (network.target_modules and is_denoiser) else list(site.targets)
    patterns: dict[str, int] = {}
    alphas: dict[str, float] = {}
    if network.conv_dim and site.conv_targets:
        targets += list(site.conv_targets)
        for name in site.conv_targets:
            # peft matches pattern keys against the end of module names.
            patterns[name] = network.conv_dim
            alphas[name] = float(network.conv_alpha or network.conv_dim)
    return LoraConfig(
        r=network.dim,
        lora_alpha=float(network.alpha or network.dim),
        target_modules=targets,
        lora_dropout=network.dropout,
        use_dora=network.dora,
        rank_pattern=patterns,
        alpha_pattern=alphas,
        init_lora_weights=True,
        exclude_modules=site.exclude if not network.target_modules else None,
    )


def inject(
    model: LoadedModel, sites: list[LoraSite], network: NetworkSpec, denoiser: str
) -> list[InjectedSite]:
    """Add LoRA layers (fp32, trainable) to every site; everything else stays frozen."""
    injected = []
    for site in sites:
        module = model[site.name]
        module.requires_grad_(False)
        config = lora_config(site, network, is_denoiser=site.name == denoiser)
        try:
            inject_adapter_in_model(config, module, adapter_name=ADAPTER)
        except ValueError as exc:  # peft: "Target modules … not found in the base model"
            raise ValueError(f"network.target_modules: {exc}") from exc
        for name, param in module.named_parameters():
            if "lora_" in name:
                param.data = param.data.float()
                param.requires_grad_(True)
        injected.append(InjectedSite(site, module, config))
        count = sum(p.numel() for p in injected[-1].parameters())
        log.info("LoRA on %s: %d trainable parameters", site.name, count)
    return injected


def lora_state(injected: list[InjectedSite]) -> dict[str, dict[str, torch.Tensor]]:
    return {s.site.name: get_peft_model_state_dict(s.module, adapter_name=ADAPTER) for s in injected}


def load_lora_state(injected: list[InjectedSite], state: dict[str, dict[str, torch.Tensor]]) -> None:
    for s in injected:
        result = set_peft_model_state_dict(s.module, state[s.site.name], adapter_name=ADAPTER)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ValueError(f"saved state does not fit the LoRA of {s.site.name}: {unexpected[:3]}")
