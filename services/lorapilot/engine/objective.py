"""The diffusion training objective: noisy input, target and per-sample loss weights.

Epsilon and v-prediction follow DDPM (`scheduler.add_noise`, `get_velocity`); min-SNR weighting
is Hang et al. 2023 (weight = min(SNR, γ) / SNR for ε, / (SNR + 1) for v). Flow matching lands
with the FLUX/SD3 families.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler


@dataclass
class NoisedBatch:
    noisy: torch.Tensor
    timesteps: torch.Tensor
    target: torch.Tensor
    weights: torch.Tensor  # per-sample loss weight from the objective (min-SNR), 1 otherwise


class DiffusionObjective:
    def __init__(self, scheduler_config: dict, prediction_type: str, device: torch.device) -> None:
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction type {prediction_type!r} needs another objective")
        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.prediction_type = prediction_type
        self.num_timesteps = self.scheduler.config.num_train_timesteps
        alphas = self.scheduler.alphas_cumprod.to(device)
        self.snr = alphas / (1.0 - alphas)
        self.scheduler.alphas_cumprod = self.scheduler.alphas_cumprod.to(device)

    def noise(
        self,
        latents: torch.Tensor,
        generator: torch.Generator,
        noise_offset: float = 0.0,
        min_snr_gamma: float | None = None,
    ) -> NoisedBatch:
        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
        if noise_offset:
            # Offset noise (Guttenberg 2023): lets the model shift an image's mean brightness.
            offset = torch.randn((b, latents.shape[1], 1, 1), generator=generator, device=latents.device)
            noise = noise + noise_offset * offset.to(latents.dtype)
        timesteps = torch.randint(0, self.num_timesteps, (b,), generator=generator, device=latents.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        weights = torch.ones(b, device=latents.device)
        if min_snr_gamma:
            snr = self.snr[timesteps]
            clipped = torch.clamp(snr, max=min_snr_gamma)
            weights = clipped / (snr + 1.0) if self.prediction_type == "v_prediction" else clipped / snr
        return NoisedBatch(noisy, timesteps, target, weights)
