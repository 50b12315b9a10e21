"""Tests for disrupt.eval.metrics: known values, identities, threshold semantics, shapes."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from disrupt.eval import metrics
from disrupt.eval.metrics import (
    RUIZ_THRESHOLD,
    disrupted,
    l1,
    l2,
    linf_255,
    output_distortion,
    perceptibility,
    psnr,
    ruiz_mse,
    ssim,
)

PAIRWISE: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "ruiz_mse": ruiz_mse,
    "l1": l1,
    "psnr": psnr,
    "ssim": ssim,
    "linf_255": linf_255,
    "l2": l2,
}


@pytest.fixture
def pair() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 16, 16, generator=g)
    b = (a + 0.1 * torch.randn(3, 3, 16, 16, generator=g)).clamp(0, 1)
    return a, b


def test_ruiz_mse_is_mse_on_minus_one_to_one() -> None:
    zeros, ones, half = (
        torch.zeros(2, 3, 4, 4),
        torch.ones(2, 3, 4, 4),
        torch.full((2, 3, 4, 4), 0.5),
    )
    assert torch.equal(ruiz_mse(zeros, ones), torch.tensor([4.0, 4.0]))
    assert torch.equal(ruiz_mse(zeros, half), torch.tensor([1.0, 1.0]))
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 5, 7, generator=g), torch.rand(2, 3, 5, 7, generator=g)
    direct = ((2 * a - 1) - (2 * b - 1)).square().mean(dim=(1, 2, 3))
    assert torch.allclose(ruiz_mse(a, b), direct)


def test_threshold_is_strict_and_per_image() -> None:
    clean = torch.zeros(2, 3, 4, 4)
    adv = torch.stack([torch.full((3, 4, 4), 0.5), torch.zeros(3, 4, 4)])  # ruiz 1.0 and 0.0
    assert disrupted(adv, clean, threshold=1.0).tolist() == [False, False]
    assert disrupted(adv, clean, threshold=0.99).tolist() == [True, False]
    assert disrupted(adv, clean).dtype == torch.bool


def test_threshold_numbers_in_the_docs() -> None:
    offset = math.sqrt(RUIZ_THRESHOLD / 4)  # the constant change that sits on the threshold
    clean = torch.full((1, 3, 8, 8), 0.25, dtype=torch.float64)
    adv = clean + offset
    assert ruiz_mse(adv, clean).item() == pytest.approx(RUIZ_THRESHOLD)
    assert psnr(adv, clean).item() == pytest.approx(19.03, abs=0.01)
    assert offset * 255 == pytest.approx(28.5, abs=0.05)
    assert disrupted(clean + 1.01 * offset, clean).item()
    assert not disrupted(clean + 0.99 * offset, clean).item()


def test_psnr_of_a_constant_offset() -> None:
    a = torch.full((2, 3, 8, 8), 0.5, dtype=torch.float64)
    assert torch.allclose(psnr(a + 0.1, a), torch.tensor([20.0, 20.0], dtype=torch.float64))
    assert torch.allclose(psnr(a + 0.01, a), torch.tensor([40.0, 40.0], dtype=torch.float64))
    assert torch.allclose(psnr((a + 0.1) * 255, a * 255, data_range=255), psnr(a + 0.1, a))


def test_other_known_values() -> None:
    a = torch.zeros(1, 3, 4, 4)
    b = a.clone()
    b[0, 0, 0, 0], b[0, 1, 2, 3] = 0.3, -0.4
    assert l2(b, a).item() == pytest.approx(0.5)
    assert l1(b, a).item() == pytest.approx(0.7 / 48)
    assert linf_255(b, a).item() == pytest.approx(0.4 * 255)
    c = a.clone()
    c[0, 2, 1, 1] = 8 / 255
    assert linf_255(c, a).item() == pytest.approx(8.0)


def test_identical_inputs(pair: tuple[Tensor, Tensor]) -> None:
    a, _ = pair
    assert torch.equal(ruiz_mse(a, a), torch.zeros(3))
    assert torch.equal(l1(a, a), torch.zeros(3))
    assert torch.equal(l2(a, a), torch.zeros(3))
    assert torch.equal(linf_255(a, a), torch.zeros(3))
    assert torch.isposinf(psnr(a, a)).all()
    assert torch.allclose(ssim(a, a), torch.ones(3), atol=1e-5)
    assert not disrupted(a, a).any()


def test_ssim_drops_with_noise_and_is_symmetric(pair: tuple[Tensor, Tensor]) -> None:
    a, b = pair
    s = ssim(a, b)
    assert (s < 0.99).all() and (s > -1).all()
    assert torch.allclose(s, ssim(b, a), atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (3, 5), (10, 40)])
def test_ssim_on_images_smaller_than_the_window(size: tuple[int, int]) -> None:
    a = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert torch.isfinite(ssim(a, 1 - a)).all()


def test_ssim_rejects_even_windows() -> None:
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="odd"):
        ssim(a, a, window_size=8)


@pytest.mark.parametrize("name", list(PAIRWISE))
def test_batch_equals_per_image(name: str, pair: tuple[Tensor, Tensor]) -> None:
    fn = PAIRWISE[name]
    a, b = pair
    batched = fn(a, b)
    assert batched.shape == (3,) and batched.is_floating_point()
    singles = torch.cat([fn(a[i : i + 1], b[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, singles, atol=1e-6)


@pytest.mark.parametrize("name", [*PAIRWISE, "disrupted"])
def test_shape_mismatch_names_both_shapes(name: str) -> None:
    fn = getattr(metrics, name)
    with pytest.raises(ValueError) as info:
        fn(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    assert "(1, 3, 8, 8)" in str(info.value) and "(1, 3, 8, 9)" in str(info.value)
    with pytest.raises(ValueError, match="B,C,H,W"):
        fn(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))


def test_summaries_agree_with_the_functions(pair: tuple[Tensor, Tensor]) -> None:
    a, b = pair
    p = perceptibility(a, b)
    assert set(p) == {"psnr", "ssim", "linf_255", "l2"}
    for key, value in p.items():
        assert torch.equal(value, PAIRWISE[key](a, b)), key
    o = output_distortion(a, b)
    assert set(o) == {"ruiz_mse", "disrupted", "l1", "psnr", "ssim"}
    for key in ("ruiz_mse", "l1", "psnr", "ssim"):
        assert torch.equal(o[key], PAIRWISE[key](a, b)), key
    assert torch.equal(o["disrupted"], disrupted(a, b))
    assert torch.equal(
        output_distortion(a, b, threshold=10.0)["disrupted"], torch.zeros(3, dtype=torch.bool)
    )


def test_metrics_are_differentiable(pair: tuple[Tensor, Tensor]) -> None:
    a, b = pair
    a = a.clone().requires_grad_(True)
    (ruiz_mse(a, b).sum() + ssim(a, b).sum()).backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
