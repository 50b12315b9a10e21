"""The equal-work speed comparison, early stopping and bfloat16 autocast, on tiny targets."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import disrupt.bench.speed as speed
from attacks import run_attack
from disrupt.bench.speed import (
    ResearchLoop,
    batched_attack,
    batched_objective,
    compare_loops,
    naive_attack,
)
from disrupt.core.objectives import BalancedAway, Ensemble, balanced_stop_at
from disrupt.core.precision import Autocast, autocast_default
from targets.base import GeneratorTarget


@pytest.mark.parametrize("balanced", [False, True])
def test_research_loop_gradient_equals_the_batched_gradient(  # type: ignore[no-untyped-def]
        cond_target, uncond_target, images, balanced) -> None:
    targets = [cond_target, uncond_target]
    start = (images + 0.03 * torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
             ).clamp(0, 1)
    loop = ResearchLoop(targets, images, balanced=balanced)
    naive = loop.gradient(start)
    point = start.clone().requires_grad_(True)
    (ours,) = torch.autograd.grad(batched_objective(targets, images, balanced=balanced)(point)
                                  .sum(), point)
    assert naive.abs().max() > 0
    torch.testing.assert_close(naive, ours, rtol=1e-4, atol=1e-7)
    for t in targets:  # the weight gradients the research loop computed are gone again
        assert all(not p.requires_grad and p.grad is None for p in t.parameters())


def test_naive_and_batched_attacks_reach_the_same_result(cond_target, images) -> None:  # type: ignore[no-untyped-def]
    a = naive_attack([cond_target], images, eps=8 / 255, alpha=2 / 255, steps=3,
                     generator=torch.Generator().manual_seed(0))
    b = batched_attack([cond_target], images, eps=8 / 255, alpha=2 / 255, steps=3,
                       generator=torch.Generator().manual_seed(0))
    assert (a - images).abs().max() <= 8 / 255 + 1e-6
    assert (a - b).abs().le(1e-6).float().mean() >= 0.99
    assert not torch.equal(a, images)


def test_compare_loops_checks_that_the_results_agree(cond_target, images, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    result = compare_loops([cond_target], images, eps=8 / 255, alpha=2 / 255, steps=2)
    assert result.same_pixels >= speed.SAME_PIXELS and result.naive_s > 0 and result.ours_s > 0
    assert result.conditions == len(cond_target.conditions)
    monkeypatch.setattr(speed, "naive_attack", lambda targets, x, **kw: x.clone())
    with pytest.raises(RuntimeError, match="disagree"):
        compare_loops([cond_target], images, eps=8 / 255, alpha=2 / 255, steps=2)


def _mean_objective(calls: list[int]):  # type: ignore[no-untyped-def]
    def objective(z: Tensor) -> Tensor:
        calls.append(1)
        return z.flatten(1).mean(dim=1)
    return objective


def test_stop_at_freezes_each_image_where_its_score_reached_it() -> None:
    x = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.1)])
    calls: list[int] = []
    goal = 0.5 + 3 / 255 - 1e-6  # the first image gets there after 3 steps, the second never
    out = run_attack(x, _mean_objective(calls), eps=8 / 255, alpha=1 / 255, steps=8,
                     stop_at=goal)
    torch.testing.assert_close(out[0], torch.full((3, 4, 4), 0.5 + 3 / 255))
    torch.testing.assert_close(out[1], torch.full((3, 4, 4), 0.1 + 8 / 255))
    assert len(calls) == 8
    calls.clear()
    out = run_attack(x[:1], _mean_objective(calls), eps=8 / 255, alpha=1 / 255, steps=8,
                     stop_at=goal)
    assert len(calls) == 4  # the fourth call measures the goal reached, then the loop ends
    torch.testing.assert_close(out, torch.full((1, 3, 4, 4), 0.5 + 3 / 255))
    with pytest.raises(ValueError, match="stop_at"):
        run_attack(x, _mean_objective(calls), eps=8 / 255, alpha=1 / 255, steps=2,
                   stop_at=math.nan)


def test_balanced_early_stop_ends_with_every_output_past_the_margin(cond_target, images) -> None:  # type: ignore[no-untyped-def]
    objective = Ensemble([BalancedAway(cond_target, images)])
    stop = balanced_stop_at(objective)
    assert stop == pytest.approx(objective.objectives[0].ceiling * (1 - 1e-4))  # type: ignore[attr-defined]
    calls: list[int] = []

    def counted(z: Tensor) -> Tensor:
        calls.append(1)
        return objective(z)

    out = run_attack(images, counted, eps=0.5, alpha=0.1, steps=30, random_start=True,
                     generator=torch.Generator().manual_seed(0), stop_at=stop)
    assert len(calls) < 30  # a 0.5 budget disrupts the tiny model long before 30 steps
    ratios = objective.objectives[0].ratios(out)  # type: ignore[attr-defined]
    assert bool((ratios >= 1.25 - 1e-3).all())
    with pytest.raises(TypeError):
        balanced_stop_at(Ensemble([lambda z: z.flatten(1).mean(1)]))  # type: ignore[arg-type]


def test_autocast_scores_are_float32_and_close(cond_target: GeneratorTarget, images) -> None:  # type: ignore[no-untyped-def]
    objective = batched_objective([cond_target], images)
    point = (images + 0.05).clamp(0, 1)
    plain = objective(point)
    low = Autocast(objective)(point)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, plain, rtol=0.05, atol=1e-4)
    assert autocast_default(torch.device("cuda")) and not autocast_default(torch.device("cpu"))


def test_halvings_halve_the_step_at_evenly_spaced_points() -> None:
    x = torch.full((1, 3, 4, 4), 0.2)
    calls: list[int] = []
    out = run_attack(x, _mean_objective(calls), eps=0.5, alpha=4 / 255, steps=4, halvings=1)
    torch.testing.assert_close(out, torch.full_like(x, 0.2 + (4 + 4 + 2 + 2) / 255))
    out = run_attack(x, _mean_objective(calls), eps=0.5, alpha=4 / 255, steps=3, halvings=2)
    torch.testing.assert_close(out, torch.full_like(x, 0.2 + (4 + 2 + 1) / 255))
    with pytest.raises(ValueError, match="halvings"):
        run_attack(x, _mean_objective(calls), eps=0.5, alpha=4 / 255, steps=3, halvings=-1)
