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

__all__ = [
    "jpeg420_differentiable",
    "jpeg444_differentiable",
    "kornia_quantization_tables",
    "quantization_tables",
]

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


# --------------------------------------------------------------------------------------
# The EOT's random JPEG: kornia's codec, computed faster
#
# ``kornia.enhance.jpeg_codec_differentiable`` (Reich et al., "Differentiable JPEG: the
# devil is in the details", WACV 2024) is the codec of the EOT mix's random JPEG. On a
# 12 MP photo's ~1000 px face region it took about half the attack's time: its chroma
# subsampling is a Gaussian blur (a convolution) plus a resize, and its 8x8 DCT runs as
# many tiny products. :func:`jpeg420_differentiable` computes the same function (same
# forward values and same surrogate gradients, up to float rounding; the test compares
# both with kornia's) with slicing arithmetic for the chroma and one 64x64 product for
# the DCT.
# --------------------------------------------------------------------------------------


def _poly_round(x: Tensor) -> Tensor:
    """kornia's differentiable rounding: ``round(x) + (x - round(x))**3`` (its gradient
    is ``3 (x - round(x))**2``, not the identity)."""
    r = torch.round(x).detach()
    return r + (x - r) ** 3


def _poly_floor(x: Tensor) -> Tensor:
    """kornia's differentiable floor: ``floor(x) + (x - 0.5 - floor(x))**3``."""
    f = torch.floor(x)
    return f + (x - 0.5 - f) ** 3


def _soft_clip(x: Tensor, low: float, high: float, scale: float = 0.02) -> Tensor:
    """kornia's soft clipping: exponential tails past ``low`` and ``high``."""
    over = x - high
    x = torch.where(over > 0, -scale * (torch.exp(-over.clamp(min=0)) - 1.0) + high, x)
    under = x - low
    return torch.where(under < 0, scale * (torch.exp(under.clamp(max=0)) - 1.0) + low, x)


def kornia_quantization_tables(quality: float, dtype: torch.dtype = torch.float32
                               ) -> tuple[Tensor, Tensor]:
    """The luma and chroma tables ``(64,)`` that kornia's codec divides by at ``quality``,
    computed in ``dtype`` as kornia computes them in the image's.

    They are the Annex K tables scaled as libjpeg does, but through kornia's smooth
    floor and clipping, so they are not integers (at quality 75 the scale is 49.875,
    not 50). Quality 0 is taken as 1, as kornia and libjpeg do.
    """
    q = torch.tensor(float(quality) or 1.0, dtype=dtype)
    scale = _poly_floor(5000.0 / q if float(q) < 50 else 200.0 - 2.0 * q)

    def scaled(base: tuple[int, ...]) -> Tensor:
        t = torch.tensor(base, dtype=dtype)
        return _poly_floor(_soft_clip((t * scale + 50.0) / 100.0, 1.0, 255.0))

    return scaled(_LUMA), scaled(_CHROMA)


def _halve(x: Tensor, dim: int, edge: float) -> Tensor:
    """kornia's chroma subsampling along ``dim`` (size even): a 3-tap Gaussian
    ``(edge, 1 - 2 edge, edge)`` with reflected borders, then the mean of each pair,
    which is what a bilinear resize to half size samples."""
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 1, 1), x, x.narrow(dim, n - 2, 1)], dim=dim)

    def every_other(start: int) -> Tensor:  # padded[start], padded[start + 2], ...: n / 2 values
        index = [slice(None)] * x.dim()
        index[dim] = slice(start, start + n - 1, 2)
        return padded[tuple(index)]

    centre = 1.0 - 2.0 * edge
    return 0.5 * (edge * (every_other(0) + every_other(3))
                  + (edge + centre) * (every_other(1) + every_other(2)))


def _double(x: Tensor, dim: int) -> Tensor:
    """A bilinear resize to twice the size along ``dim`` (half-pixel centres, edges
    repeated), as ``F.interpolate(scale_factor=2, align_corners=False)`` computes it."""
    n = x.shape[dim]
    padded = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim=dim)
    centre = padded.narrow(dim, 1, n)
    even = 0.75 * centre + 0.25 * padded.narrow(dim, 0, n)
    odd = 0.75 * centre + 0.25 * padded.narrow(dim, 2, n)
    return torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)


def _blockwise(planes: Tensor, basis: Tensor, tables: Tensor) -> Tensor:
    """DCT, quantise (kornia's rounding), dequantise and inverse DCT of every 8x8 block.

    ``planes`` ``(B, C, H, W)`` with ``H, W`` multiples of 8, already shifted by -128;
    ``basis`` the ``(64, 64)`` 2-D DCT (``kron(D, D)``); ``tables`` ``(C, 64)``.
    """
    b, c, h, w = planes.shape
    blocks = planes.reshape(b, c, h // 8, 8, w // 8, 8).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(b, c, -1, 64)
    t = tables.view(1, c, 1, 64)
    coeffs = _poly_round((blocks @ basis.T) / t) * t
    pixels = (coeffs @ basis).reshape(b, c, h // 8, w // 8, 8, 8)
    return pixels.permute(0, 1, 2, 4, 3, 5).reshape(b, c, h, w)


def jpeg420_differentiable(x: Tensor, quality: float) -> Tensor:
    """kornia's differentiable JPEG (4:2:0 chroma) at ``quality``, computed faster.

    The same function as ``kornia.enhance.jpeg_codec_differentiable(x, q)`` with one
    quality for the batch: kornia's YCbCr, chroma blurred (3-tap Gaussian, sigma 0.5)
    and halved, orthonormal 8x8 DCT, quantisation by :func:`kornia_quantization_tables`
    with kornia's polynomial rounding, and the way back with a bilinear chroma doubling.
    Edges are padded to a multiple of 16 by repetition and cropped after. Every step
    acts on each image alone (a batch can differ from one by one only in the last
    bits of its matrix products).

    Args:
        x: ``(B, 3, H, W)`` RGB in ``[0, 1]``, any ``H, W >= 2``.
        quality: 0 to 100 (0 is taken as 1).

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, differentiable in ``x``.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
    if not 0.0 <= float(quality) <= 100.0:
        raise ValueError(f"quality must be in [0, 100], got {quality}")
    h, w = x.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b  # kornia's YCbCr
    chroma = torch.stack([(b - y) * 0.564 + 0.5, (r - y) * 0.713 + 0.5], dim=1) * 255.0
    edge = math.exp(-2.0)  # Gaussian weights for sigma 0.5 at +-1, before normalising
    edge = edge / (1.0 + 2.0 * edge)
    chroma = _halve(_halve(chroma, 2, edge), 3, edge)

    luma_table, chroma_table = kornia_quantization_tables(quality, x.dtype)
    d = _dct_matrix(x.device, x.dtype)
    basis = torch.kron(d, d)
    luma = _blockwise(y.unsqueeze(1) * 255.0 - 128.0, basis,
                      luma_table.to(x.device).view(1, 64)) + 128.0
    chroma = _blockwise(chroma - 128.0, basis, chroma_table.to(x.device).expand(2, 64)) + 128.0
    chroma = _double(_double(chroma, 2), 3)

    yy = luma[:, 0] / 255.0
    cb, cr = chroma[:, 0] / 255.0 - 0.5, chroma[:, 1] / 255.0 - 0.5
    rgb = torch.stack([yy + 1.4025245442 * cr,
                       yy - 0.7144034731 * cr - 0.3443401356 * cb,
                       yy + 1.7730496454 * cb], dim=1)
    return rgb.clamp(0.0, 1.0)[..., :h, :w]
