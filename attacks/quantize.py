"""Round an adversarial image to 8 bits without leaving its Linf budget.

Rounding ``x_adv`` to the nearest of the 256 levels moves each pixel by up to half a
level, which can push ``|x_adv - x|`` past ``eps`` (for instance when ``x`` itself is
not on the 8-bit grid, e.g. after resizing). After rounding, each level is clamped
into the integer interval that the budget allows around ``x``; for an ``x_adv``
that was inside the budget this moves an offending pixel by exactly one level
toward ``x``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.loop import check_image

LEVELS = 255
_SLACK = 1e-4  # in levels: absorbs float error in (x +- eps) * 255 near a grid point


def quantize_to_uint8_within(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Round ``x_adv`` to 8-bit levels, keeping ``|q - x| <= eps`` (Linf) per pixel.

    Args:
        x_adv: adversarial images ``(B, C, H, W)``, float, values in ``[0, 1]``.
        x: the clean images they were made from, same shape, values in ``[0, 1]``.
        eps: the Linf budget in ``[0, 1]`` units, at least half a level (``0.5/255``),
            the smallest budget every ``x`` has an 8-bit level within.

    Returns:
        ``q``: same shape and dtype as ``x_adv``, values ``k / 255`` for integers
        ``0 <= k <= 255`` (``(q * 255).round().to(torch.uint8)`` recovers them
        exactly), with ``|q - x| <= eps`` up to float rounding (~1e-6).
    """
    check_image(x_adv, "x_adv")
    check_image(x, "x")
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv {tuple(x_adv.shape)} and x {tuple(x.shape)} differ in shape")
    if not 0.5 / LEVELS <= eps <= 1:
        raise ValueError(f"eps must be in [0.5/255, 1] to survive 8-bit rounding, got {eps}")
    with torch.no_grad():
        ref = x.detach().to(torch.float32)
        levels = torch.round(x_adv.detach().to(torch.float32) * LEVELS)
        lowest = torch.ceil((ref - eps) * LEVELS - _SLACK).clamp_min(0)
        highest = torch.floor((ref + eps) * LEVELS + _SLACK).clamp_max(LEVELS)
        levels = torch.minimum(torch.maximum(levels, lowest), highest)
        return (levels / LEVELS).to(x_adv.dtype)
