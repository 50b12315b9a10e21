"""Rounding a protected photo to 8 bits without leaving its budget, band by band so a
large photo needs only a band's worth of temporaries (the per-image rounding itself
is :func:`attacks.quantize_to_uint8_within`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from attacks import Norm, quantize_to_uint8_within
from disrupt.core.faces import (
    Box,
)

#: Rows per band when quantizing a large photo (L-inf rounding is per pixel).
_QUANTIZE_BAND_PIXELS = 1 << 20


def quantize_within(
    x_adv: Tensor, x: Tensor, eps: float, norm: Norm = "linf", *,
    linf_cap: float | Tensor | None = None, region: Box | None = None,
) -> Tensor:
    """:func:`attacks.quantize_to_uint8_within` for a photo: 8-bit levels within budget.

    Works in bands of rows, so a large photo needs a band's worth of temporaries.
    L-inf rounding is per pixel: bands give exactly the one-call result. L2 (with an
    optional per-pixel ``linf_cap``): every pixel is first rounded within the cap,
    then the L2 ball is restored over ``region`` (default: the whole photo), where
    the attack worked, band by band: each band gets the share of ``eps**2`` that its
    own change has of the total, ``eps_b = eps * ||delta_b|| / ||delta||``, so the
    bands' squares add up to at most ``eps**2`` and each band's change already fits
    its share before rounding. Pixels outside ``region``, and bands the attack left
    unchanged, equal ``x`` up to rounding (exactly, for an 8-bit source). A tensor
    ``linf_cap`` is a cap per pixel of ``region`` (``(1, 1, h, w)``, each at least half
    a level), as :func:`~disrupt.core.masking.texture_caps` makes.
    """
    if norm == "linf":
        return _quantize_linf(x_adv, x, eps)
    if x_adv.shape[0] > 1:  # the L2 ball is per image
        return torch.cat([quantize_within(x_adv[i : i + 1], x[i : i + 1], eps, norm,
                                          linf_cap=linf_cap, region=region)
                          for i in range(x_adv.shape[0])])
    largest = float(linf_cap.max()) if isinstance(linf_cap, Tensor) else linf_cap
    out = _quantize_linf(x_adv, x, largest if largest is not None else 1.0)
    r = region if region is not None else Box(0, 0, x.shape[-1], x.shape[-2])
    rows_r, cols_r = slice(r.top, r.bottom), slice(r.left, r.right)
    x_r, adv_r = x[..., rows_r, cols_r], x_adv[..., rows_r, cols_r]
    if isinstance(linf_cap, Tensor):
        out[..., rows_r, cols_r] = _quantize_linf(adv_r, x_r, linf_cap)
    bands = _row_bands(r.height, r.width)
    norms = [float((adv_r[..., b, :] - x_r[..., b, :]).double().square().sum()) for b in bands]
    total = math.sqrt(sum(norms))
    for band, sq in zip(bands, norms, strict=True):
        if sq == 0.0:
            continue  # unchanged band: already rounded above
        share = eps * math.sqrt(sq) / max(total, eps)
        q = quantize_to_uint8_within(adv_r[..., band, :], x_r[..., band, :], share, norm="l2")
        if linf_cap is not None:  # moves levels toward x only: stays inside the share
            cap = linf_cap[..., band, :] if isinstance(linf_cap, Tensor) else linf_cap
            q = quantize_to_uint8_within(q, x_r[..., band, :], cap, norm="linf")
        top = r.top + band.start
        out[..., top : top + q.shape[-2], r.left : r.right] = q
    return out


def _row_bands(height: int, width: int) -> list[slice]:
    """Bands of whole rows of at most :data:`_QUANTIZE_BAND_PIXELS` pixels (one row at least)."""
    rows = max(1, _QUANTIZE_BAND_PIXELS // max(1, width))
    return [slice(top, min(height, top + rows)) for top in range(0, height, rows)]


def _quantize_linf(x_adv: Tensor, x: Tensor, eps: float | Tensor) -> Tensor:
    bands = _row_bands(*x.shape[-2:])
    if len(bands) == 1:
        return quantize_to_uint8_within(x_adv, x, eps, norm="linf")
    out = torch.empty_like(x_adv)
    for band in bands:
        cap = eps[..., band, :] if isinstance(eps, Tensor) else eps
        out[..., band, :] = quantize_to_uint8_within(x_adv[..., band, :], x[..., band, :], cap,
                                                     norm="linf")
    return out
