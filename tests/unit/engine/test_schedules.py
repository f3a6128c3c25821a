"""LR schedules: warmup, decay shapes and the lr_end floor, as the optimizer actually sees them."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lorapilot.engine.schedules import build_scheduler, lr_multiplier
from lorapilot.spec.model import TrainingSpec


def lrs(kind: str, steps: int = 100, **training) -> list[list[float]]:
    groups = [
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-4},
        {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-3},
    ]
    optimizer = torch.optim.SGD(groups, lr=1e-4)
    spec = TrainingSpec(max_steps=steps, learning_rate=1e-4, lr_scheduler=kind, **training)
    scheduler = build_scheduler(optimizer, spec, steps)
    seen = []
    for _ in range(steps):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return seen


def test_constant_never_changes():
    assert {tuple(x) for x in lrs("constant")} == {(1e-4, 1e-3)}


def test_warmup_ramps_up_then_holds():
    seen = lrs("constant_with_warmup", warmup_steps=10)
    assert seen[0][0] < seen[5][0] < seen[9][0] < seen[10][0] == pytest.approx(1e-4)
    assert seen[-1][0] == pytest.approx(1e-4)


@pytest.mark.parametrize("kind", ["linear", "cosine", "polynomial"])
def test_decay_reaches_the_floor_in_every_group(kind):
    seen = lrs(kind, steps=1000, lr_end=1e-6, warmup_steps=5)
    assert seen[5] == pytest.approx([1e-4, 1e-3])
    # The last update runs one step before the end of the decay: at most a hair above the floor.
    assert seen[-1][0] == pytest.approx(1e-6, rel=0.1) and seen[-1][1] == pytest.approx(1e-6, abs=2e-6)
    assert lr_multiplier(kind, 1000, 5, 0.01)(1000) == pytest.approx(0.01)
    assert all(a[0] >= b[0] - 1e-12 for a, b in itertools.pairwise(seen[5:]))  # never rises


def test_cosine_midpoint_and_polynomial_power():
    f = lr_multiplier("cosine", 100, 0, 0.1)
    assert f(50) == pytest.approx(0.1 + 0.9 * 0.5)
    g = lr_multiplier("polynomial", 100, 0, 0.0, power=2.0)
    assert g(50) == pytest.approx(0.25)


def test_cosine_with_restarts_climbs_back_at_each_cycle():
    f = lr_multiplier("cosine_with_restarts", 90, 0, 0.0, cycles=3)
    assert f(0) == f(30) == f(60) == pytest.approx(1.0)
    assert f(15) == pytest.approx(0.5) and f(29) < 0.01
    assert math.isclose(f(89), f(29), rel_tol=1e-6)
