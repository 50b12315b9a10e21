"""Evaluation channels (JPEG, resize, blur) and the spread-spectrum objective."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from attacks import run_attack
from disrupt.core.eot import SPREAD_SPECTRUM_BLURS, SpreadSpectrum
from disrupt.core.objectives import AwayFromClean
from disrupt.core.transforms import Blur
from disrupt.eval.channels import Channel, gaussian_blur, jpeg, parse_channel, resize


@pytest.fixture
def batch() -> Tensor:
    """(2, 3, 29, 37) on the 8-bit grid: odd sizes catch off-by-one resizing."""
    g = torch.Generator().manual_seed(3)
    return (torch.rand(2, 3, 29, 37, generator=g) * 255).round() / 255


def _high_frequency(x: Tensor) -> float:
    """Energy of horizontal + vertical neighbour differences."""
    return float((x[..., 1:, :] - x[..., :-1, :]).square().mean()
                 + (x[..., :, 1:] - x[..., :, :-1]).square().mean())


def test_jpeg_changes_the_image_and_is_deterministic(batch: Tensor) -> None:
    out = jpeg(batch, 50)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert (out - batch).abs().max() > 2 / 255
    assert torch.equal(out, jpeg(batch, 50))
    assert torch.equal(out, (out * 255).round() / 255)  # on the 8-bit grid
    assert out.min() >= 0 and out.max() <= 1
    # higher quality stays closer to the input
    assert (jpeg(batch, 95) - batch).abs().mean() < (out - batch).abs().mean()


def test_resize_returns_the_same_size(batch: Tensor) -> None:
    out = resize(batch, 0.5)
    assert out.shape == batch.shape
    assert not torch.equal(out, batch)
    assert _high_frequency(out) < _high_frequency(batch)


def test_blur_reduces_high_frequency(batch: Tensor) -> None:
    out = gaussian_blur(batch, 1.5)
    assert out.shape == batch.shape
    assert _high_frequency(out) < 0.25 * _high_frequency(batch)
    flat = torch.full_like(batch, 0.4)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat, atol=1e-6)


@pytest.mark.parametrize("spec", ["none", "jpeg:75", "resize:0.5", "blur:1.5"])
def test_channel_class_agrees_with_function(spec: str, batch: Tensor) -> None:
    ch = parse_channel(spec)
    assert ch.name == spec
    expected = {"none": lambda x: x, "jpeg:75": lambda x: jpeg(x, 75),
                "resize:0.5": lambda x: resize(x, 0.5),
                "blur:1.5": lambda x: gaussian_blur(x, 1.5)}[spec](batch)
    assert torch.equal(ch(batch), expected)


@pytest.mark.parametrize("spec", ["jpeg", "jpeg:0", "jpeg:75.5", "resize:2", "blur:-1", "zip:3"])
def test_bad_channel_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        parse_channel(spec)


def test_channel_name_round_trips() -> None:
    assert parse_channel(Channel("jpeg", 95).name) == Channel("jpeg", 95)


def test_spread_spectrum_cycles_the_blurs(images: Tensor) -> None:
    seen: list[Tensor] = []

    def make(x_ref: Tensor):  # type: ignore[no-untyped-def]
        def objective(x_adv: Tensor) -> Tensor:
            seen.append(x_adv.detach())
            return x_adv.flatten(1).mean(1)
        return objective

    ss = SpreadSpectrum(make, images)
    assert len(ss.parts) == len(SPREAD_SPECTRUM_BLURS) == 6
    for _ in range(7):
        ss(images)
    for t, got in enumerate(seen):
        blur = SPREAD_SPECTRUM_BLURS[t % 6]
        assert torch.allclose(got, blur(images).clamp(0, 1))
    assert not torch.allclose(seen[0], seen[1])
    ss.reset()
    assert ss.calls == 0


def test_spread_spectrum_attack_stays_in_budget_and_gets_gradients(
    cond_target, images: Tensor  # type: ignore[no-untyped-def]
) -> None:
    eps = 8 / 255
    objective = SpreadSpectrum(lambda xb: AwayFromClean(cond_target, xb), images)
    x_adv = run_attack(images, objective, eps=eps, alpha=2 / 255, steps=6)
    assert (x_adv - images).abs().max() <= eps + 1e-6
    assert (x_adv - images).abs().max() > 1 / 255  # it moved: the blurs pass gradients


def test_blur_validation() -> None:
    with pytest.raises(ValueError):
        Blur("box", 4)
    with pytest.raises(ValueError):
        Blur("median", 3)
