"""The EOT's random JPEG: :func:`disrupt.core.jpeg.jpeg420_differentiable` computes
kornia's differentiable codec (values and surrogate gradients), only faster."""

from __future__ import annotations

import kornia
import pytest
import torch

from disrupt.core.jpeg import jpeg420_differentiable, kornia_quantization_tables
from disrupt.core.transforms import RandomJPEG, jpeg_differentiable


def _kornia(x: torch.Tensor, quality: float) -> torch.Tensor:
    q = torch.full((x.shape[0],), quality, dtype=x.dtype)
    return kornia.enhance.jpeg_codec_differentiable(x, q)


def _value_and_grad(codec, x: torch.Tensor, weights: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.clone().requires_grad_(True)
    out = codec(leaf)
    (out * weights).sum().backward()
    assert leaf.grad is not None
    return out.detach(), leaf.grad


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (2, 3, 37, 50), (1, 3, 130, 97)])
@pytest.mark.parametrize("quality", [0.0, 1.0, 33.3, 50.0, 75.0, 95.0, 100.0])
def test_equals_kornias_codec_in_float64(shape: tuple[int, ...], quality: float) -> None:
    # In float64 the two differ only by the order of their sums: every value and
    # every gradient agrees to 1e-9, padding to 16, odd sizes and the batch included.
    gen = torch.Generator().manual_seed(int(quality) + shape[-1])
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    weights = torch.randn(shape, generator=gen, dtype=torch.float64)
    ours, our_grad = _value_and_grad(lambda t: jpeg420_differentiable(t, quality), x, weights)
    theirs, their_grad = _value_and_grad(lambda t: _kornia(t, quality), x, weights)
    assert ours.shape == x.shape
    assert torch.allclose(ours, theirs, atol=1e-9, rtol=0)
    assert torch.allclose(our_grad, their_grad, atol=1e-9, rtol=1e-9)
    # The codec is lossy: it changes the image, and its gradient is not the identity.
    assert (ours - x).abs().mean() > 1e-3
    assert not torch.allclose(our_grad, weights, atol=1e-3)


@pytest.mark.parametrize("quality", [50.0, 75.0, 95.0])
def test_float32_agrees_but_for_rounding_ties(quality: float) -> None:
    # In float32 a DCT coefficient a hair from a half can round the other way in one
    # codec and not the other, which moves that block (16x16 pixels for a chroma
    # coefficient) by one quantisation step: a few blocks of the 130 here, never more.
    gen = torch.Generator().manual_seed(7)
    x = torch.rand((1, 3, 208, 160), generator=gen)
    ours, theirs = jpeg420_differentiable(x, quality), _kornia(x, quality)
    gap = (ours - theirs).abs().amax(dim=1)[0]
    blocks_off = (gap.view(13, 16, 10, 16).amax(dim=(1, 3)) > 1e-5).sum().item()
    assert blocks_off <= 6
    assert gap.max() < 0.1


def test_tables_are_kornias_smooth_tables() -> None:
    # Quality 75 scales by kornia's smooth floor of 50 (49.875), so 16 becomes
    # floor_p((16 * 49.875 + 50) / 100) = floor_p(8.48) = 8 + (-0.02)**3.
    luma, chroma = kornia_quantization_tables(75.0, torch.float64)
    assert luma.shape == chroma.shape == (64,)
    assert luma[0].item() == pytest.approx(8.0 - 0.02**3, abs=1e-12)
    # 17 (chroma's first entry): floor_p(8.97875) = 8 + 0.47875**3.
    assert chroma[0].item() == pytest.approx(8.0 + 0.47875**3, abs=1e-12)


def test_is_batch_independent_and_validated() -> None:
    x = torch.rand((3, 3, 40, 24), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    together = jpeg420_differentiable(x, 80.0)
    alone = torch.cat([jpeg420_differentiable(x[i : i + 1], 80.0) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-12)
    with pytest.raises(ValueError, match="quality"):
        jpeg420_differentiable(x, 101.0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        jpeg420_differentiable(x[:, :2], 80.0)


def test_random_jpeg_draws_kornias_codec() -> None:
    x = torch.rand((1, 3, 48, 48), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    draw = RandomJPEG((70.0, 70.0)).sample(torch.Generator().manual_seed(0))
    assert torch.allclose(draw(x), _kornia(x, 70.0).clamp(0, 1), atol=1e-9)
    assert torch.allclose(jpeg_differentiable(x, 0.0), _kornia(x, 1.0), atol=1e-9)
