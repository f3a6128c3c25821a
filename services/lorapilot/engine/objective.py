"""The diffusion training objectives: noisy input, target and per-sample loss weights.

Epsilon and v-prediction follow DDPM (`scheduler.add_noise`, `get_velocity`); min-SNR weighting
is Hang et al. 2023 (weight = min(SNR, γ) / SNR for ε, / (SNR + 1) for v).

Flow matching (rectified flow, as FLUX.1 and SD3 are trained): x_σ = (1 − σ)·x + σ·ε, target ε − x.
σ is drawn by one of the samplers the trainers offer (kohya's `timestep_sampling`, ai-toolkit's
`timestep_type`): uniform, sigmoid / logit-normal (Esser et al. 2024), a fixed shift
σ' = sσ / (1 + (s − 1)σ), or FLUX's resolution-dependent shift, whose μ grows linearly from 0.5 at
256 image tokens to 1.15 at 4096 (the real FLUX.1-dev scheduler config). Loss weights `sigma_sqrt`
and `cosmap` are diffusers' `compute_loss_weighting_for_sd3`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from diffusers import DDPMScheduler

log = logging.getLogger(__name__)


@dataclass
class NoisedBatch:
    noisy: torch.Tensor
    timesteps: torch.Tensor  # what the denoiser is conditioned on: DDPM step, or σ·1000 for flows
    target: torch.Tensor
    weights: torch.Tensor  # per-sample loss weight from the objective (min-SNR, SD3 weighting), 1 otherwise


class Objective(Protocol):
    def noise(
        self,
        latents: torch.Tensor,
        generator: torch.Generator,
        noise_offset: float = 0.0,
        min_snr_gamma: float | None = None,
    ) -> NoisedBatch: ...


def _noise(latents: torch.Tensor, generator: torch.Generator, noise_offset: float) -> torch.Tensor:
    noise = torch.randn(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    if noise_offset:
        # Offset noise (Guttenberg 2023): lets the model shift an image's mean brightness.
        shape = (latents.shape[0], latents.shape[1], 1, 1)
        offset = torch.randn(shape, generator=generator, device=latents.device)
        noise = noise + noise_offset * offset.to(latents.dtype)
    return noise


class DiffusionObjective:
    """DDPM training targets; timesteps are drawn uniformly from [min_timestep, max_timestep), as
    sd-scripts draws them (unset: the scheduler's whole range)."""

    def __init__(
        self,
        scheduler_config: dict,
        prediction_type: str,
        device: torch.device,
        *,
        min_timestep: int | None = None,
        max_timestep: int | None = None,
    ) -> None:
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction type {prediction_type!r} needs another objective")
        self.scheduler = DDPMScheduler.from_config(scheduler_config)
        self.prediction_type = prediction_type
        self.num_timesteps = self.scheduler.config.num_train_timesteps
        self.min_timestep = min_timestep or 0
        self.max_timestep = self.num_timesteps if max_timestep is None else max_timestep
        if not 0 <= self.min_timestep < self.max_timestep <= self.num_timesteps:
            raise ValueError(
                f"training.min_timestep {self.min_timestep} / max_timestep {self.max_timestep}: need "
                f"0 <= min < max <= {self.num_timesteps} (the model's training timesteps)"
            )
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
        noise = _noise(latents, generator, noise_offset)
        timesteps = torch.randint(
            self.min_timestep, self.max_timestep, (b,), generator=generator, device=latents.device
        )
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


def flux_mu(image_seq_len: int, base: float = 0.5, top: float = 1.15) -> float:
    """FLUX.1's shift exponent for an image of `image_seq_len` tokens (linear from 256 to 4096 tokens)."""
    slope = (top - base) / (4096 - 256)
    return slope * image_seq_len + (base - slope * 256)


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


class FlowMatchingObjective:
    """Rectified-flow targets; `image_seq_len` tells the resolution-dependent shift how big an image is."""

    SAMPLINGS = ("uniform", "sigmoid", "logit_normal", "shift", "flux_shift")
    WEIGHTINGS = ("none", "sigma_sqrt", "cosmap")

    def __init__(
        self,
        sampling: str,
        *,
        shift: float = 3.0,
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        weighting: str = "none",
        image_seq_len: Callable[[torch.Tensor], int] | None = None,
    ) -> None:
        if sampling not in self.SAMPLINGS:
            raise ValueError(f"timestep_sampling {sampling!r}: use one of {', '.join(self.SAMPLINGS)}")
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"loss_weighting {weighting!r}: use one of {', '.join(self.WEIGHTINGS)}")
        if sampling == "flux_shift" and image_seq_len is None:
            raise ValueError("flux_shift needs the model's image token count")
        self.sampling, self.shift, self.weighting = sampling, shift, weighting
        self.logit_mean, self.logit_std = logit_mean, logit_std
        self.image_seq_len = image_seq_len
        self._warned = False

    def sigmas(self, latents: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        b, device = latents.shape[0], latents.device
        if self.sampling == "uniform":
            return torch.rand((b,), generator=generator, device=device)
        normal = torch.randn((b,), generator=generator, device=device)
        sigmas = torch.sigmoid(self.logit_mean + self.logit_std * normal)
        if self.sampling == "shift":
            sigmas = shift_sigmas(sigmas, self.shift)
        elif self.sampling == "flux_shift":
            sigmas = shift_sigmas(sigmas, math.exp(flux_mu(self.image_seq_len(latents))))
        return sigmas

    def noise(
        self,
        latents: torch.Tensor,
        generator: torch.Generator,
        noise_offset: float = 0.0,
        min_snr_gamma: float | None = None,
    ) -> NoisedBatch:
        if min_snr_gamma and not self._warned:
            log.warning("min_snr_gamma applies to DDPM models; flow-matching models ignore it")
            self._warned = True
        noise = _noise(latents, generator, noise_offset)
        sigmas = self.sigmas(latents, generator)
        s = sigmas.view(-1, *[1] * (latents.ndim - 1))
        noisy = (1.0 - s) * latents + s * noise
        if self.weighting == "sigma_sqrt":
            weights = (sigmas**-2.0).clamp(max=1e4)  # σ → 0 would give an unbounded weight
        elif self.weighting == "cosmap":
            weights = 2.0 / (math.pi * (1.0 - 2.0 * sigmas + 2.0 * sigmas**2))
        else:
            weights = torch.ones_like(sigmas)
        return NoisedBatch(noisy, sigmas * 1000.0, noise - latents, weights)
