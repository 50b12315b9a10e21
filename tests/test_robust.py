"""Differentiable EOT transforms and the ExpectationOverTransforms objective."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from disrupt.core.eot import ExpectationOverTransforms
from disrupt.core.objectives import AwayFromClean
from disrupt.core.transforms import (
    DEFAULT_EOT_TRANSFORMS,
    Identity,
    InputDiversity,
    RandomBoxBlur,
    RandomCropResize,
    RandomGaussianBlur,
    RandomJPEG,
    RandomResize,
    RandomTransform,
    jpeg_differentiable,
)
from targets.base import GeneratorTarget

ALL: list[RandomTransform] = [*DEFAULT_EOT_TRANSFORMS, InputDiversity(probability=1.0)]


def _x(shape: tuple[int, ...] = (2, 3, 37, 29), seed: int = 3) -> Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", ALL, ids=lambda f: f.name)
def test_transform_keeps_shape_range_and_passes_finite_gradients(family: RandomTransform) -> None:
    x = _x().requires_grad_(True)
    for seed in range(3):
        t = family.sample(torch.Generator().manual_seed(seed))
        y = t(x)
        assert y.shape == x.shape
        assert float(y.detach().min()) >= 0.0 and float(y.detach().max()) <= 1.0
        (grad,) = torch.autograd.grad((y * torch.linspace(0, 1, y.numel()).view_as(y)).sum(), x)
        assert torch.isfinite(grad).all()
        if family.name != "identity":
            assert grad.abs().sum() > 0


@pytest.mark.parametrize("family", ALL, ids=lambda f: f.name)
def test_transform_is_deterministic_under_a_seed(family: RandomTransform) -> None:
    x = _x()
    a = family.sample(torch.Generator().manual_seed(7))(x)
    b = family.sample(torch.Generator().manual_seed(7))(x)
    assert torch.equal(a, b)


def test_draws_vary_with_the_generator() -> None:
    x = _x()
    g = torch.Generator().manual_seed(0)
    outs = [RandomResize().sample(g)(x) for _ in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_jpeg_quality_zero_is_floored_not_nan() -> None:
    y = jpeg_differentiable(_x(), 0.0)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: RandomJPEG((0.0, 90.0)),
        lambda: RandomJPEG((50.0, 101.0)),
        lambda: RandomResize((0.5, 1.5)),
        lambda: RandomGaussianBlur((2.0, 1.0)),
        lambda: RandomBoxBlur((4,)),
        lambda: RandomCropResize(-1),
        lambda: InputDiversity(ratio=0.9),
    ],
)
def test_bad_ranges_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        make()


def test_eot_averages_the_drawn_transforms() -> None:
    x = _x((1, 3, 16, 16))

    def objective(z: Tensor) -> Tensor:
        return z.flatten(1).mean(dim=1) + z[:, 0, 0, 0]

    eot = ExpectationOverTransforms(objective, DEFAULT_EOT_TRANSFORMS, samples=3,
                                    generator=torch.Generator().manual_seed(5))
    got = eot(x)
    # Replay the same draws by hand.
    replay = ExpectationOverTransforms(objective, DEFAULT_EOT_TRANSFORMS,
                                       generator=torch.Generator().manual_seed(5))
    manual = torch.stack([objective(replay.draw()[1](x)) for _ in range(3)]).mean(dim=0)
    assert torch.allclose(got, manual)
    assert len(eot.drawn) == 3


def test_eot_of_identity_is_the_objective(cond_target: GeneratorTarget, images: Tensor) -> None:
    inner = AwayFromClean(cond_target, images)
    eot = ExpectationOverTransforms(inner, [Identity()], samples=2)
    x_adv = (images + 0.03).clamp(0, 1)
    assert torch.allclose(eot(x_adv), inner(x_adv))


def test_eot_is_differentiable_through_a_target(cond_target: GeneratorTarget,
                                                 images: Tensor) -> None:
    eot = ExpectationOverTransforms(AwayFromClean(cond_target, images), samples=2,
                                    generator=torch.Generator().manual_seed(0))
    x_adv = images.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(eot(x_adv).sum(), x_adv)
    assert grad.shape == images.shape and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_eot_with_references_scores_zero_at_the_clean_image(
    cond_target: GeneratorTarget, images: Tensor
) -> None:
    # Reference G(t(x)) per draw: the clean image scores 0 through any transform.
    eot = ExpectationOverTransforms.with_references(
        lambda xr: AwayFromClean(cond_target, xr), images, samples=3,
        generator=torch.Generator().manual_seed(1),
    )
    assert torch.allclose(eot(images), torch.zeros(images.shape[0]), atol=1e-6)


def test_eot_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        ExpectationOverTransforms(lambda z: z.sum((1, 2, 3)), [])
    with pytest.raises(ValueError):
        ExpectationOverTransforms(lambda z: z.sum((1, 2, 3)), samples=0)
