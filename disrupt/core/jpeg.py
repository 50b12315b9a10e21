"""A differentiable JPEG that matches how :mod:`disrupt.imaging.save` writes JPEGs.

kornia's differentiable codec (used for the random JPEG of the EOT mix) always
subsamples chroma 4:2:0, as most re-encoders do. Our own JPEG outputs keep full chroma
(4:4:4, quality 95), and through kornia's codec an attack wastes its budget on
surviving a chroma loss the saved file never has. This codec follows the baseline JPEG
steps (ITU-T T.81) with no subsampling:

1. RGB to 8-bit YCbCr (JFIF), shifted by -128;
2. 8x8 blocks (edges padded by repetition, as libjpeg does), orthonormal 2-D DCT-II
   (equal to the standard's scaled DCT);
3. divide by the quality-scaled quantisation tables (Annex K tables, libjpeg's
   quality scaling), round with a straight-through gradient, multiply back;
4. inverse DCT, back to 8-bit RGB, crop, clamp to ``[0, 1]``.

Every rounding (to 8-bit YCbCr, of the coefficients, to 8-bit pixels) passes its
gradient straight through (Shin and Song, "JPEG-resistant adversarial images", 2017,
use a smooth approximation instead; at quality 95 the steps are 1-10 levels, so the
identity is close). libjpeg computes the DCT in integers, so a coefficient near a
rounding boundary can fall the other way: outputs differ from Pillow's by about one
level on average (tests/test_jpeg_output.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["jpeg444_differentiable", "quantization_tables"]

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), row by row.
_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
_CHROMA_ROWS = (
    (17, 18, 24, 47), (18, 21, 26, 66), (24, 26, 56), (47, 66),
)
_CHROMA = tuple(
    (_CHROMA_ROWS[r][c] if r < 4 and c < len(_CHROMA_ROWS[r]) else 99)
    for r in range(8) for c in range(8)
)


def quantization_tables(quality: float) -> tuple[Tensor, Tensor]:
    """Luma and chroma tables ``(8, 8)`` for ``quality`` in ``[1, 100]``, scaled as
    libjpeg's ``jpeg_set_quality`` does with baseline limits (entries 1 to 255)."""
    q = min(100.0, max(1.0, float(quality)))
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q

    def scaled(base: tuple[int, ...]) -> Tensor:
        t = torch.tensor(base, dtype=torch.float64).view(8, 8)
        return torch.floor((t * scale + 50.0) / 100.0).clamp(1, 255).float()

    return scaled(_LUMA), scaled(_CHROMA)


def _dct_matrix(device: torch.device, dtype: torch.dtype) -> Tensor:
    """``(8, 8)`` orthonormal DCT-II: ``coefficients = D @ block @ D.T``."""
    k = torch.arange(8, dtype=torch.float64).view(8, 1)
    n = torch.arange(8, dtype=torch.float64).view(1, 8)
    d = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=dtype)


_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def _round_through(x: Tensor) -> Tensor:
    """Round to integers, with the identity as gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


def _mix(x: Tensor, matrix: tuple[tuple[float, ...], ...]) -> Tensor:
    m = torch.tensor(matrix, device=x.device, dtype=x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)


def jpeg444_differentiable(x: Tensor, quality: float) -> Tensor:
    """Encode and decode ``x`` as a baseline JPEG at ``quality`` with 4:4:4 chroma.

    Args:
        x: ``(B, 3, H, W)`` RGB in ``[0, 1]``, any ``H, W``.
        quality: 1 to 100, as Pillow's ``quality=`` (values outside are clamped).

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, differentiable in ``x`` (straight-through
        rounding).
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    luma, chroma = quantization_tables(quality)
    tables = torch.stack([luma, chroma, chroma]).to(device=x.device, dtype=x.dtype)
    ycc = _round_through(_mix(x * 255.0, _TO_YCBCR))  # libjpeg converts to 8-bit YCbCr
    ycc = ycc + torch.tensor([-128.0, 0.0, 0.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        ycc = F.pad(ycc, (0, pw, 0, ph), mode="replicate")
    hh, ww = ycc.shape[-2:]
    # (B, 3, H/8, W/8, 8, 8) blocks
    blocks = ycc.view(b, 3, hh // 8, 8, ww // 8, 8).permute(0, 1, 2, 4, 3, 5)
    d = _dct_matrix(x.device, x.dtype)
    coeffs = d @ blocks @ d.T
    t = tables.view(1, 3, 1, 1, 8, 8)
    scaled = coeffs / t
    rounded = _round_through(scaled)
    pixels = d.T @ (rounded * t) @ d
    ycc = pixels.permute(0, 1, 2, 4, 3, 5).reshape(b, 3, hh, ww)[..., :h, :w]
    ycc = ycc + torch.tensor([128.0, 0.0, 0.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (_round_through(_mix(ycc, _TO_RGB)) / 255.0).clamp(0.0, 1.0)  # 8-bit pixels
