"""Round an adversarial image to 8 bits without leaving its budget.

Rounding ``x_adv`` to the nearest of the 256 levels moves each pixel by up to half a
level, which can push ``||x_adv - x||`` past ``eps`` (for instance when ``x`` itself is
not on the 8-bit grid, e.g. after resizing, or when ``x_adv`` sits on the budget's
edge). After rounding, the integer image is projected back into the budget:

- Linf: each level is clamped into the integer interval the budget allows around
  ``x``; for an ``x_adv`` inside the budget this moves an offending pixel by exactly
  one level toward ``x``.
- L2: pixels are switched from the nearest level to the other neighbouring level
  (the one closer to ``x``), those that shrink the distance most first, until the
  image is back inside the ball.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks.loop import Norm, check_image, check_params

LEVELS = 255
_SLACK = 1e-4  # in levels: absorbs float error in (x +- eps) * 255 near a grid point


def quantize_to_uint8_within(x_adv: Tensor, x: Tensor, eps: float | Tensor,
                             norm: Norm = "linf") -> Tensor:
    """Round ``x_adv`` to 8-bit levels, keeping ``||q - x|| <= eps`` per image.

    Args:
        x_adv: adversarial images ``(B, C, H, W)``, float, values in ``[0, 1]``.
        x: the clean images they were made from, same shape, values in ``[0, 1]``.
        eps: the budget in ``[0, 1]`` units. For ``norm="linf"`` at least half a level
            (``0.5/255``), the smallest budget every ``x`` has an 8-bit level within;
            ``linf`` also takes a tensor broadcastable to ``x``: a budget per pixel.
        norm: ``"linf"`` (per pixel) or ``"l2"`` (per image).

    Returns:
        ``q``: same shape and dtype as ``x_adv``, values ``k / 255`` for integers
        ``0 <= k <= 255`` (``(q * 255).round().to(torch.uint8)`` recovers them
        exactly), within ``eps`` of ``x`` up to float rounding (~1e-6).

    Raises:
        ValueError: bad arguments, or (L2 only) an ``x`` so far off the 8-bit grid that
            no 8-bit image near ``x_adv`` fits the budget.
    """
    if isinstance(eps, Tensor):
        if norm != "linf":
            raise ValueError("a per-pixel budget needs norm='linf'")
        if not bool(torch.isfinite(eps).all()):
            raise ValueError("a per-pixel budget must be finite")
    else:
        check_params(eps, 1.0, 1, norm, 0.0)
    check_image(x_adv, "x_adv")
    check_image(x, "x")
    if x_adv.shape != x.shape:
        raise ValueError(f"x_adv {tuple(x_adv.shape)} and x {tuple(x.shape)} differ in shape")
    with torch.no_grad():
        ref = x.detach().to(torch.float32) * LEVELS
        target = x_adv.detach().to(torch.float32) * LEVELS
        if isinstance(eps, Tensor):
            levels = _linf(target, ref, eps.to(target) * LEVELS)
        elif norm == "linf":
            levels = _linf(target, ref, eps * LEVELS)
        else:
            levels = _l2(target, ref, eps * LEVELS)
        return (levels / LEVELS).to(x_adv.dtype)


def _linf(target: Tensor, ref: Tensor, budget: float | Tensor) -> Tensor:
    """Nearest levels, clamped to ``[ref - budget, ref + budget]`` (all in level units)."""
    smallest = float(budget.min()) if isinstance(budget, Tensor) else budget
    if smallest < 0.5:
        raise ValueError(
            f"eps must be at least 0.5/255 to survive 8-bit rounding, got {smallest}/255"
        )
    lowest = torch.ceil(ref - budget - _SLACK).clamp_min(0)
    highest = torch.floor(ref + budget + _SLACK).clamp_max(LEVELS)
    return torch.minimum(torch.maximum(torch.round(target), lowest), highest)


def _l2(target: Tensor, ref: Tensor, budget: float) -> Tensor:
    """Nearest levels; then, per image, switch pixels to the neighbour nearer ``ref``."""
    nearest = torch.round(target)
    # The two levels around target are floor and ceil; `safe` is the one nearer ref.
    low, high = torch.floor(target), torch.ceil(target)
    safe = torch.where((low - ref).abs() <= (high - ref).abs(), low, high)
    gain = ((nearest - ref).square() - (safe - ref).square()).flatten(1)  # >= 0
    excess = (nearest - ref).square().flatten(1).sum(1) - budget**2 * (1 + 1e-6)
    order = gain.argsort(dim=1, descending=True)
    saved = gain.gather(1, order).cumsum(1)
    if (saved[:, -1] < excess).any():
        raise ValueError("x is too far off the 8-bit grid for this L2 budget")
    # switch the fewest top-gain pixels whose savings cover the excess (none if <= 0)
    count = (saved < excess.unsqueeze(1)).sum(1, keepdim=True) + (excess > 0).unsqueeze(1)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=order.device).expand_as(order)
    )
    switch = (rank < count).view_as(target)
    return torch.where(switch, safe, nearest)
