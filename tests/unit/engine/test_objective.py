"""The DDPM objective draws training timesteps where the spec says, as sd-scripts does."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from lorapilot.engine.families import adapter_for
from lorapilot.engine.families.base import LoadedModel, ModelFacts
from lorapilot.engine.objective import DiffusionObjective
from lorapilot.spec.model import TrainingSpec


def drawn_timesteps(objective, draws: int = 64, batch: int = 64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    latents = torch.zeros(batch, 4, 8, 8)
    return torch.cat([objective.noise(latents, generator).timesteps for _ in range(draws)])


def sd_objective(training: TrainingSpec):
    """The objective a UNet-family run builds, from the adapter the trainer asks."""
    adapter = adapter_for("sd15")
    model = LoadedModel({"scheduler": DDPMScheduler()}, adapter.pipeline_class, ModelFacts("epsilon", None))
    return adapter.objective(model, training, torch.device("cpu"))


def test_min_and_max_timestep_bound_every_drawn_timestep_with_max_excluded():
    timesteps = drawn_timesteps(sd_objective(TrainingSpec(min_timestep=200, max_timestep=400)))
    assert int(timesteps.min()) == 200 and int(timesteps.max()) == 399
    assert len(timesteps.unique()) == 200  # uniform over the whole range, not a few values


def test_without_bounds_timesteps_cover_the_schedulers_whole_range():
    timesteps = drawn_timesteps(sd_objective(TrainingSpec()))
    assert int(timesteps.min()) == 0 and int(timesteps.max()) == 999


def test_only_a_minimum_keeps_the_top_of_the_range():
    timesteps = drawn_timesteps(sd_objective(TrainingSpec(min_timestep=900)))
    assert int(timesteps.min()) == 900 and int(timesteps.max()) == 999


def test_a_range_outside_the_schedulers_timesteps_is_refused_naming_the_fields():
    config = DDPMScheduler(num_train_timesteps=500).config
    with pytest.raises(ValueError, match=r"training\.min_timestep .*max_timestep 800.*<= 500"):
        DiffusionObjective(config, "epsilon", torch.device("cpu"), max_timestep=800)
