"""Objectives: batched conditions agree with a per-condition loop; shapes, weights, cycling."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from attacks import create_attack
from disrupt.core.objectives import (
    AwayFromClean,
    Ensemble,
    IterativeConditions,
    JointConditions,
    TowardOutput,
)
from targets.base import Condition, GeneratorTarget


def _near(x: Tensor, seed: int = 5, eps: float = 8 / 255) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + eps * (2 * torch.rand(x.shape, generator=g) - 1)).clamp(0, 1)


def _loop_mse(target: GeneratorTarget, x_adv: Tensor, x: Tensor) -> Tensor:
    """Reference: one call per condition, per-image MSE, mean over conditions."""
    scores = []
    with torch.no_grad():
        for c in target.conditions:
            y, y0 = target(x_adv, c.vector), target(x, c.vector)
            scores.append((y - y0).square().flatten(1).mean(1))
    return torch.stack(scores).mean(0)


@pytest.mark.parametrize("fixture", ["cond_target", "uncond_target", "bn_target"])
def test_batched_conditions_equal_per_condition_loop(
    fixture: str, images: Tensor, request: pytest.FixtureRequest
) -> None:
    target: GeneratorTarget = request.getfixturevalue(fixture)
    objective = AwayFromClean(target, images, tie_break=0.0)
    assert objective.batched == (fixture != "bn_target")
    assert objective.num_passes == (1 if fixture == "uncond_target" else 3)
    assert objective.clean.shape == (objective.num_passes, 2, 3, 32, 32)
    assert not objective.clean.requires_grad
    x_adv = _near(images)
    score = objective(x_adv)
    assert score.shape == (2,)
    torch.testing.assert_close(score, _loop_mse(target, x_adv, images), rtol=1e-5, atol=1e-7)


def test_one_target_call_per_step_for_all_conditions(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    calls: list[tuple[int, ...]] = []
    cond_target.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    objective = AwayFromClean(cond_target, images)
    calls.clear()
    objective(_near(images))
    assert calls == [(6, 3, 32, 32)]  # K * B rows, one forward


def test_score_is_zero_at_clean_and_tie_break_is_tiny(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    objective = AwayFromClean(cond_target, images)
    assert torch.equal(objective(images), torch.zeros(2))
    x_adv = _near(images)
    plain = AwayFromClean(cond_target, images, tie_break=0.0)(x_adv)
    torch.testing.assert_close(objective(x_adv), plain, rtol=0.05, atol=0)


def test_tie_break_is_what_lets_attacks_leave_x(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    attack = create_attack("ifgsm", eps=8 / 255, steps=2)
    stuck = attack(images, AwayFromClean(cond_target, images, tie_break=0.0))
    assert torch.equal(stuck, images)  # the MSE's gradient at x is exactly zero
    assert not torch.equal(attack(images, AwayFromClean(cond_target, images)), images)


def test_l1_loss(uncond_target: GeneratorTarget, images: Tensor) -> None:
    x_adv = _near(images)
    score = AwayFromClean(uncond_target, images, loss="l1", tie_break=0.0)(x_adv)
    with torch.no_grad():
        expected = (uncond_target(x_adv) - uncond_target(images)).abs().flatten(1).mean(1)
    torch.testing.assert_close(score, expected)


def test_joint_conditions_is_away_from_clean(cond_target: GeneratorTarget, images: Tensor) -> None:
    x_adv = _near(images)
    joint = JointConditions(cond_target, images)
    assert isinstance(joint, AwayFromClean)
    assert torch.equal(joint(x_adv), AwayFromClean(cond_target, images)(x_adv))


def test_iterative_conditions_cycle(cond_target: GeneratorTarget, images: Tensor) -> None:
    x_adv = _near(images)
    objective = IterativeConditions(cond_target, images)
    singles = [AwayFromClean(cond_target, images, [c])(x_adv) for c in cond_target.conditions]
    for t in range(7):
        assert torch.equal(objective(x_adv), singles[t % 3])
    assert objective.calls == 7
    objective.reset()
    assert torch.equal(objective(x_adv), singles[0])


def test_ensemble_weighted_mean(
    cond_target: GeneratorTarget, uncond_target: GeneratorTarget, images: Tensor
) -> None:
    x_adv = _near(images)
    a, b = AwayFromClean(cond_target, images), AwayFromClean(uncond_target, images)
    torch.testing.assert_close(Ensemble([a, b], [1.0, 3.0])(x_adv), (a(x_adv) + 3 * b(x_adv)) / 4)
    torch.testing.assert_close(Ensemble([a, b])(x_adv), (a(x_adv) + b(x_adv)) / 2)
    torch.testing.assert_close(Ensemble([a, b], [0.0, 2.0])(x_adv), b(x_adv))
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError):
            Ensemble([a, b], bad)
    with pytest.raises(ValueError):
        Ensemble([])


class _Counting:
    """An objective that returns fixed per-image scores and counts its calls."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = torch.tensor(scores)
        self.calls = 0

    def __call__(self, x_adv: Tensor) -> Tensor:
        self.calls += 1
        return self.scores + 0 * x_adv.flatten(1).sum(1)


def test_ensemble_gives_up_on_an_objective_that_never_moved() -> None:
    x = torch.rand(2, 3, 4, 4)
    strong, weak = _Counting([0.5, 0.2]), _Counting([0.001, 0.003])
    ens = Ensemble([strong, weak], give_up_after=3, give_up_below=0.01)
    for _ in range(3):  # the first calls still count both, as the plain mean
        torch.testing.assert_close(ens(x), (strong.scores + weak.scores) / 2)
    assert ens.given_up == [1]
    for _ in range(4):  # then the weak one is no longer run, and the mean is over the rest
        torch.testing.assert_close(ens(x), strong.scores)
    assert (strong.calls, weak.calls) == (7, 3)


def test_ensemble_gives_up_per_image_as_each_image_alone_would() -> None:
    x = torch.rand(2, 3, 4, 4)
    a, b = _Counting([0.5, 0.5]), _Counting([0.0, 0.02])
    ens = Ensemble([a, b], give_up_after=1, give_up_below=0.01)
    ens(x)
    # b moved on the second image only: given up on the first, still counted on the second
    torch.testing.assert_close(ens(x), torch.tensor([0.5, (0.5 + 0.02) / 2]))
    assert ens.given_up == [] and b.calls == 2
    for b_alone, expected in (([0.0], 0.5), ([0.02], 0.26)):
        one = Ensemble([_Counting([0.5]), _Counting(b_alone)], give_up_after=1,
                       give_up_below=0.01)
        one(x[:1])
        torch.testing.assert_close(one(x[:1]), torch.tensor([expected]))


def test_ensemble_keeps_an_objective_that_moved_on_an_earlier_call() -> None:
    x = torch.rand(1, 3, 4, 4)
    a, c = _Counting([0.5]), _Counting([0.02])
    ens = Ensemble([a, c], give_up_after=2, give_up_below=0.01)
    ens(x)
    c.scores = torch.tensor([0.0])  # EOT draws make scores noisy: the best so far counts
    ens(x)
    assert ens.given_up == []


def test_ensemble_never_gives_up_on_everything_nor_without_being_asked() -> None:
    x = torch.rand(1, 3, 4, 4)
    a, b = _Counting([0.001]), _Counting([0.002])
    ens = Ensemble([a, b], give_up_after=1, give_up_below=0.01)
    ens(x)
    ens(x)
    assert ens.given_up == [] and (a.calls, b.calls) == (2, 2)
    plain = Ensemble([a, _Counting([0.5])])
    for _ in range(5):
        plain(x)
    assert plain.given_up == [] and a.calls == 7
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            Ensemble([a], give_up_after=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Ensemble([a], give_up_after=1, give_up_below=float("nan"))


def test_toward_output_is_minus_mse_and_attack_gets_closer(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    y_target = torch.zeros(1, 3, 32, 32)  # a black output
    objective = TowardOutput(cond_target, images, y_target)
    with torch.no_grad():
        expected = -torch.stack(
            [
                cond_target(images, c.vector).square().flatten(1).mean(1)
                for c in cond_target.conditions
            ]
        ).mean(0)
    torch.testing.assert_close(objective(images), expected)
    x_adv = create_attack("ifgsm", eps=8 / 255)(images, objective)
    assert (objective(x_adv) > objective(images)).all()


def test_toward_output_checks_target_shape(cond_target: GeneratorTarget, images: Tensor) -> None:
    with pytest.raises(ValueError, match="batch"):
        TowardOutput(cond_target, images, torch.zeros(3, 3, 32, 32))
    with pytest.raises(ValueError, match="outputs"):
        TowardOutput(cond_target, images, torch.zeros(2, 3, 16, 16))(images)


def test_objectives_validate_inputs(cond_target: GeneratorTarget, images: Tensor) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AwayFromClean(cond_target, images * 2)
    with pytest.raises(ValueError, match="RGB"):
        AwayFromClean(cond_target, images[:, :1])
    with pytest.raises(ValueError, match="4-D"):
        AwayFromClean(cond_target, images[0])
    with pytest.raises(ValueError, match="loss"):
        AwayFromClean(cond_target, images, loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tie_break"):
        AwayFromClean(cond_target, images, tie_break=-1.0)
    with pytest.raises(ValueError, match="mix"):
        AwayFromClean(cond_target, images, [Condition("a", torch.ones(3)), Condition("b")])
    with pytest.raises(ValueError, match="shape"):
        AwayFromClean(cond_target, images)(images[:1])


# --------------------------------------------------------------- balancing models (issue 9)


class _HighPass(torch.nn.Module):
    """Very sensitive to fine texture: tanh(20 * (x - local mean))."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(20 * (x - torch.nn.functional.avg_pool2d(x, 3, 1, 1,
                                                                   count_include_pad=False)))


class _LowPass(torch.nn.Module):
    """Barely sensitive, and only to smooth changes: 0.3 * a 7x7 local mean."""

    def forward(self, x: Tensor) -> Tensor:
        return 0.3 * torch.nn.functional.avg_pool2d(x, 7, 1, 3, count_include_pad=False)


def _two_sensitivities() -> list[GeneratorTarget]:
    return [GeneratorTarget(name, net, value_range=(-1, 1), input_size=(24, 24))
            for name, net in (("strong", _HighPass()), ("weak", _LowPass()))]


def _ruiz_after(objective_cls: type[AwayFromClean], targets: list[GeneratorTarget],
                x: Tensor) -> dict[str, float]:
    from attacks import create_attack
    from disrupt.core.objectives import Ensemble
    from disrupt.eval.evaluation import measure_disruption

    objective = Ensemble([objective_cls(t, x) for t in targets])
    attack = create_attack("pgd", eps=8 / 255, steps=30)
    x_adv = attack(x, objective, generator=torch.Generator().manual_seed(0))
    return {d.target: d.ruiz_mse for d in measure_disruption(targets, x, x_adv)[0]}


def test_balanced_objective_lifts_the_weakest_model() -> None:
    from disrupt.core.objectives import RUIZ_THRESHOLD, BalancedAway

    targets = _two_sensitivities()
    x = 0.2 + 0.6 * torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    plain = _ruiz_after(AwayFromClean, targets, x)
    balanced = _ruiz_after(BalancedAway, targets, x)
    # The plain mean spends the budget on the sensitive model's fine texture, which the
    # smooth model does not see; the balanced one freezes the first past the
    # threshold and moves the effort to the second.
    assert plain["strong"] > RUIZ_THRESHOLD and balanced["strong"] > RUIZ_THRESHOLD
    assert balanced["weak"] > 3 * plain["weak"], (plain, balanced)


def test_balanced_score_is_zero_at_x_frozen_past_the_margin(cond_target: GeneratorTarget,
                                                            images: Tensor) -> None:
    import math

    from disrupt.core.objectives import BalancedAway

    objective = BalancedAway(cond_target, images, margin=0.25, floor=0.01)
    assert torch.allclose(objective(images), torch.zeros(2), atol=1e-6)
    far = (1 - images).clamp(0, 1)  # a huge change: every output past the threshold
    ceiling = math.log((0.01 + 1.25) / 0.01)
    ratios = objective.ratios(far)
    assert bool((ratios > 1.25).all())
    assert torch.allclose(objective(far), torch.full((2,), ceiling), atol=1e-5)
    with pytest.raises(ValueError, match="loss='mse'"):
        BalancedAway(cond_target, images, loss="l1")


def test_sampled_conditions_score_a_seeded_subset_in_one_smaller_call(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    calls: list[tuple[int, ...]] = []
    cond_target.register_forward_hook(lambda m, args, out: calls.append(tuple(args[0].shape)))
    full = AwayFromClean(cond_target, images, tie_break=0.0)
    sampled = AwayFromClean(cond_target, images, tie_break=0.0, sample=2,
                            generator=torch.Generator().manual_seed(3))
    x_adv = _near(images)
    calls.clear()
    score = sampled(x_adv)
    assert calls == [(4, 3, 32, 32)]  # 2 of the 3 conditions x 2 images, one forward
    which = torch.randperm(3, generator=torch.Generator().manual_seed(3))[:2].sort()[0]
    with torch.no_grad():
        per_condition = (full.outputs(x_adv) - full.clean).square().flatten(2).mean(2)
    torch.testing.assert_close(score, per_condition[which].mean(0), rtol=1e-5, atol=1e-7)


def test_sampled_conditions_average_to_the_full_mean_and_repeat_when_seeded(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    full = AwayFromClean(cond_target, images)
    x_adv = _near(images)

    def draws(seed: int) -> Tensor:
        sampled = AwayFromClean(cond_target, images, sample=1,
                                generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return torch.stack([sampled(x_adv) for _ in range(300)])

    first = draws(7)
    torch.testing.assert_close(first, draws(7))  # seeded: the same draws
    assert any(not torch.equal(first[0], f) for f in first[1:])  # not one condition always
    with torch.no_grad():
        torch.testing.assert_close(first.mean(0), full(x_adv), rtol=0.1, atol=0.0)


def test_sampling_every_condition_or_more_is_the_full_objective(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    x_adv = _near(images)
    with torch.no_grad():
        full = AwayFromClean(cond_target, images)(x_adv)
        for k in (3, 5):
            assert AwayFromClean(cond_target, images, sample=k).sample is None
            torch.testing.assert_close(AwayFromClean(cond_target, images, sample=k)(x_adv), full)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="sample"):
            AwayFromClean(cond_target, images, sample=bad)  # type: ignore[arg-type]


def test_run_protection_attacks_through_the_sampled_conditions(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    from disrupt.core.pipeline import plan_protection, run_protection

    x = images[:1]
    plan = plan_protection(x, [cond_target], faces=False)
    attack = create_attack("pgd", eps=8 / 255, steps=3)
    rows: list[int] = []
    cond_target.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    def start() -> torch.Generator:
        return torch.Generator().manual_seed(0)  # PGD's random start

    sampled = run_protection(x, [cond_target], attack, plan, conditions_per_call=1,
                             condition_seed=5, generator=start())
    assert rows == [3, 1, 1, 1]  # every condition's clean output, then one per step
    again = run_protection(x, [cond_target], attack, plan, conditions_per_call=1,
                           condition_seed=5, generator=start())
    assert torch.equal(sampled, again)  # seeded
    rows.clear()
    full = run_protection(x, [cond_target], attack, plan, generator=start())
    assert rows == [3, 3, 3, 3]
    assert not torch.equal(sampled, full)
