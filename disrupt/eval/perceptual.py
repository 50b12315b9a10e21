"""Perceptual differences: CIEDE2000 colour difference, ST-LPIPS, and a summary of how
visible a perturbation is over the region it was meant to change.

- :func:`ciede2000`: per-pixel CIEDE2000 colour difference between two sRGB images
  (through CIELAB, D65). About 1 is a just-noticeable difference side by side; 2 or
  less is hard to see in a photo.
- :func:`st_lpips`: the shift-tolerant learned perceptual distance of Ghildyal and Liu
  (ECCV 2022) from the optional package ``stlpips-pytorch`` (extra ``perceptual``).
  Report it as "ST-LPIPS": its numbers are not LPIPS numbers.
- :func:`region_perceptibility`: PSNR, SSIM, L-inf, CIEDE2000 and (when installed)
  ST-LPIPS for one image, over a mask such as the union of the face boxes that
  ``protect`` changed. Aims like "face-region PSNR >= 35 dB, mean CIEDE2000 <= 2"
  are to be checked against these numbers, not the whole-image ones, which the
  untouched background inflates.

Images are float RGB tensors ``(B,3,H,W)`` in ``[0,1]`` (sRGB), as everywhere else.
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from disrupt.eval.metrics import SSIM_WINDOW, _check_pair, _ssim_map_box, _ssim_window
from disrupt.eval.stlpips import ST_LPIPS_MIN_SIZE, ST_LPIPS_NETS, st_lpips, st_lpips_available

__all__ = [
    "CHANGED_LEVEL",
    "ciede2000",
    "region_perceptibility",
]

#: A pixel counts as changed in :func:`region_perceptibility` when some channel moved
#: by at least this much: half an 8-bit level, so any change that survives saving.
CHANGED_LEVEL = 0.5 / 255


#: :func:`ciede2000` works in bands of about this many pixels (rows x width x B): the
#: formula keeps a few dozen pixel-sized temporaries.
_CIEDE_BAND_PIXELS = 1 << 20


# --- CIEDE2000 ------------------------------------------------------------------------


def _cos_deg(x: Tensor) -> Tensor:
    return torch.cos(torch.deg2rad(x))


def _sin_deg(x: Tensor) -> Tensor:
    return torch.sin(torch.deg2rad(x))


def _ciede2000_lab(lab1: Tensor, lab2: Tensor, dim: int = -3) -> Tensor:
    """CIEDE2000 difference between two CIELAB colours, ``kL = kC = kH = 1``.

    The equations of Sharma, Wu and Dalal (2005), "The CIEDE2000 color-difference
    formula: implementation notes, supplementary test data, and mathematical
    observations", numbered as there; hue angles are in degrees in ``[0, 360)``.

    Args:
        lab1, lab2: same shape, ``L*, a*, b*`` along ``dim``.
        dim: the channel dimension.

    Returns:
        The shape without ``dim``; non-negative, 0 where the colours are equal.
    """
    if lab1.shape != lab2.shape or lab1.shape[dim] != 3:
        raise ValueError(
            f"expected two Lab tensors of one shape with 3 channels along dim {dim}, "
            f"got {tuple(lab1.shape)} and {tuple(lab2.shape)}"
        )
    L1, a1, b1 = lab1.unbind(dim)
    L2, a2, b2 = lab2.unbind(dim)
    pow25_7 = 25.0**7

    # (2)-(6): a' stretches a* for near-neutral colours; C' and h' from (a', b*).
    c1 = torch.sqrt(a1.square() + b1.square())
    c2 = torch.sqrt(a2.square() + b2.square())
    c_bar7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - torch.sqrt(c_bar7 / (c_bar7 + pow25_7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p = torch.sqrt(a1p.square() + b1.square())
    c2p = torch.sqrt(a2p.square() + b2.square())

    def hue(ap: Tensor, b: Tensor) -> Tensor:
        # (7): h' = atan2(b, a') in [0, 360), and 0 when a' = b = 0 (atan2(0, -0.) is 180).
        h = torch.remainder(torch.rad2deg(torch.atan2(b, ap)), 360.0)
        h = torch.where(h >= 360.0, h - 360.0, h)  # remainder of a tiny negative rounds to 360
        return torch.where((ap == 0) & (b == 0), torch.zeros_like(h), h)

    h1p, h2p = hue(a1p, b1), hue(a2p, b2)
    chroma_zero = (c1p * c2p) == 0

    # (8)-(11): differences in lightness, chroma and hue.
    dLp = L2 - L1
    dCp = c2p - c1p
    dhp = h2p - h1p
    dhp = torch.where(dhp > 180.0, dhp - 360.0, torch.where(dhp < -180.0, dhp + 360.0, dhp))
    dhp = torch.where(chroma_zero, torch.zeros_like(dhp), dhp)
    dHp = 2 * torch.sqrt(c1p * c2p) * _sin_deg(dhp / 2)

    # (12)-(14): means; the mean hue goes the short way round the circle.
    Lp_bar = (L1 + L2) / 2
    Cp_bar = (c1p + c2p) / 2
    h_sum = h1p + h2p
    far = (h1p - h2p).abs() > 180.0
    hp_bar = torch.where(
        far, torch.where(h_sum < 360.0, (h_sum + 360.0) / 2, (h_sum - 360.0) / 2), h_sum / 2
    )
    hp_bar = torch.where(chroma_zero, h_sum, hp_bar)

    # (15)-(22): weighting functions and the rotation term.
    t = (
        1
        - 0.17 * _cos_deg(hp_bar - 30.0)
        + 0.24 * _cos_deg(2 * hp_bar)
        + 0.32 * _cos_deg(3 * hp_bar + 6.0)
        - 0.20 * _cos_deg(4 * hp_bar - 63.0)
    )
    d_theta = 30.0 * torch.exp(-(((hp_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = Cp_bar**7
    r_c = 2 * torch.sqrt(cp_bar7 / (cp_bar7 + pow25_7))
    l50 = (Lp_bar - 50.0).square()
    s_l = 1 + 0.015 * l50 / torch.sqrt(20.0 + l50)
    s_c = 1 + 0.045 * Cp_bar
    s_h = 1 + 0.015 * Cp_bar * t
    r_t = -_sin_deg(2 * d_theta) * r_c

    dl, dc, dh = dLp / s_l, dCp / s_c, dHp / s_h
    return torch.sqrt((dl.square() + dc.square() + dh.square() + r_t * dc * dh).clamp_min(0))


def ciede2000(a: Tensor, b: Tensor) -> Tensor:
    """CIEDE2000 colour difference per pixel (``kL = kC = kH = 1``).

    Both images go to CIELAB (D65, 2-degree observer) with
    ``kornia.color.rgb_to_lab``, which undoes the sRGB curve first; the difference
    formula follows Sharma, Wu and Dalal (2005). Black against white is 100. Roughly:
    below 1 is not noticeable side by side, 1-2 only on close look, above ~3-5 plainly
    visible. Symmetric in ``a`` and ``b``.

    Computed in the input's dtype (half precision in float32); the gradient is undefined
    where the two pixels are equal (a square root at zero).

    Args:
        a, b: ``(B,3,H,W)`` sRGB in ``[0,1]``.

    Returns:
        ``(B,H,W)``, non-negative; 0 where the pixels are equal.
    """
    _check_pair(a, b)
    if a.shape[1] != 3:
        raise ValueError(f"expected RGB images (B,3,H,W), got {tuple(a.shape)}")
    if a.dtype in (torch.float16, torch.bfloat16):
        a, b = a.float(), b.float()
    batch, _, h, w = a.shape
    rows = max(1, _CIEDE_BAND_PIXELS // max(1, w * batch))
    bands = [
        _ciede2000_lab(
            kornia.color.rgb_to_lab(a[..., top : top + rows, :]),
            kornia.color.rgb_to_lab(b[..., top : top + rows, :]),
        )
        for top in range(0, h, rows)
    ]
    return bands[0] if len(bands) == 1 else torch.cat(bands, dim=-2)


# --- ST-LPIPS -------------------------------------------------------------------------


# --- region summary -------------------------------------------------------------------


def _region_mask(mask: Tensor | None, h: int, w: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(h, w, dtype=torch.bool, device=device)
    if mask.ndim == 4 and mask.shape[:2] == (1, 1):
        mask = mask[0, 0]
    if mask.shape != (h, w):
        raise ValueError(
            f"mask must be (1,1,H,W) or (H,W) matching the {h}x{w} image, got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        if not ((mask == 0) | (mask == 1)).all():
            raise ValueError("mask must be boolean or hold only 0 and 1")
        mask = mask != 0
    if not mask.any():
        raise ValueError("mask is empty: no region to measure")
    return mask.to(device)


def _quantile(values: Tensor, q: float) -> Tensor:
    """``torch.quantile(values, q)`` (linear interpolation) without its size limit."""
    ordered = values.flatten().sort().values
    pos = q * (ordered.numel() - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, ordered.numel() - 1)
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


@torch.no_grad()
def region_perceptibility(
    x_adv: Tensor,
    x: Tensor,
    mask: Tensor | None = None,
    st_lpips_net: str | None = "alex",
) -> dict[str, float]:
    """How visible the perturbation ``x_adv - x`` is over the region that matters.

    The region is typically the union of the face boxes that ``protect`` changed; the
    whole image when ``mask`` is None. These are the numbers to compare against aims
    such as "face-region PSNR >= 35 dB, mean CIEDE2000 <= 2": whole-image metrics
    (:func:`disrupt.eval.metrics.perceptibility`) count the untouched background and
    look better than the face does. Measure the 8-bit image that was saved and
    reloaded.

    Keys:

    - ``psnr``: dB from the MSE over the region's pixels and channels; ``inf`` when
      identical there.
    - ``ssim``: mean over the region's pixels and channels of the whole-image SSIM map
      (:func:`disrupt.eval.metrics.ssim_map`, window 11, so pixels next to the region
      count through the window).
    - ``linf_255``: largest change of a channel in the region, in 8-bit levels.
    - ``ciede2000_mean``, ``ciede2000_p95``: mean and 95th percentile (linear
      interpolation) of :func:`ciede2000` over the region's pixels.
    - ``changed_fraction``: fraction of the region's pixels with some channel changed by
      at least :data:`CHANGED_LEVEL` (half an 8-bit level).
    - ``pixels``: the region's size in pixels.
    - ``st_lpips`` (only when ``stlpips-pytorch`` is installed, ``st_lpips_net`` is not
      None and the region's bounding box is at least :data:`ST_LPIPS_MIN_SIZE` pixels
      high and wide): :func:`st_lpips` on the bounding box of the region. ST-LPIPS,
      not LPIPS.

    Args:
        x_adv: ``(1,3,H,W)`` protected image in ``[0,1]``.
        x: ``(1,3,H,W)`` original in ``[0,1]``.
        mask: ``(1,1,H,W)`` or ``(H,W)``, bool or 0/1; None for the whole image.
        st_lpips_net: network for ``st_lpips`` (``"alex"`` or ``"vgg"``), None to skip it.

    Returns:
        A dict of Python numbers (``pixels`` an int).
    """
    _check_pair(x_adv, x)
    if st_lpips_net is not None and st_lpips_net not in ST_LPIPS_NETS:
        raise ValueError(
            f"st_lpips_net must be one of {ST_LPIPS_NETS} or None, got {st_lpips_net!r}"
        )
    if x.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image (1,3,H,W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    region = _region_mask(mask, h, w, x.device)
    rows = region.any(dim=1).nonzero().flatten()
    cols = region.any(dim=0).nonzero().flatten()
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    a, b = x_adv[..., top:bottom, left:right], x[..., top:bottom, left:right]
    inside = region[top:bottom, left:right]

    diff = (a - b)[0][:, inside].double()  # (3, N)
    mse = float(diff.square().mean())
    ssim_box = _ssim_map_box(x_adv, x, _ssim_window(SSIM_WINDOW, h, w), top, bottom, left, right)
    delta_e = ciede2000(a, b)[0][inside].double()
    out: dict[str, float] = {
        "psnr": math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse),
        "ssim": float(ssim_box[0][:, inside].double().mean()),
        "linf_255": float(diff.abs().max()) * 255.0,
        "ciede2000_mean": float(delta_e.mean()),
        "ciede2000_p95": float(_quantile(delta_e, 0.95)),
        "changed_fraction": float((diff.abs() >= CHANGED_LEVEL).any(dim=0).double().mean()),
        "pixels": int(inside.sum()),
    }
    if (
        st_lpips_net is not None
        and st_lpips_available()
        and min(bottom - top, right - left) >= ST_LPIPS_MIN_SIZE[st_lpips_net]
    ):
        out["st_lpips"] = float(st_lpips(a, b, net=st_lpips_net)[0])
    return out
