"""The 8-bit grid: float ``(1,3,H,W)`` / ``(3,H,W)`` tensors in ``[0,1]`` to ``uint8``
arrays and back onto the grid, rounding the same way everywhere.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image
from torch import Tensor

logger = logging.getLogger(__name__)


def _as_chw(x: Tensor) -> Tensor:
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(
            f"expected an image tensor of shape (1,3,H,W) or (3,H,W), got {tuple(x.shape)}"
        )
    return x


def to_uint8(x: Tensor) -> np.ndarray:
    """Round an image to 8 bits.

    Args:
        x: float tensor of shape ``(1,3,H,W)`` or ``(3,H,W)``, values in ``[0,1]``
            (clamped first).

    Returns:
        ``(H,W,3)`` ``uint8`` array, ``round(255 * x)``.
    """
    chw = _as_chw(x).detach()
    if not torch.isfinite(chw).all():
        raise ValueError("image tensor contains NaN or infinity")
    levels = (chw.to(torch.float32).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return np.ascontiguousarray(levels.permute(1, 2, 0).cpu().numpy())


def quantize(x: Tensor) -> Tensor:
    """Snap values to the 8-bit grid ``k/255``: what a saved PNG will contain.

    Args:
        x: float tensor of any shape, values in ``[0,1]`` (clamped first).

    Returns:
        Tensor of the same shape, dtype and device, values ``round(255 * x) / 255``.
        Not differentiable in any useful way (the gradient of ``round`` is zero).
        Rounding can move a pixel by half a level, so a perturbation at exactly
        ``eps`` may exceed it by ``0.5/255`` afterwards; projecting back is the
        caller's job.
    """
    return (x.detach().clamp(0.0, 1.0) * 255.0).round() / 255.0


def to_pil(x: Tensor) -> Image.Image:
    """``(1,3,H,W)`` or ``(3,H,W)`` in ``[0,1]`` -> an RGB PIL image on the 8-bit grid
    (rounded as :func:`to_uint8`)."""
    return Image.fromarray(to_uint8(x))


def from_pil(image: Image.Image) -> Tensor:
    """A PIL image (any mode, converted to RGB) -> ``(1,3,H,W)`` float32 in ``[0,1]``."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())[None]


def center_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """The centred ``side x side`` box ``(left, top, right, bottom)`` of an image, clipped
    to the image, offsets rounded as torchvision's ``CenterCrop`` rounds them. The one
    rule for every centre crop in the project (benchmarks, face folders, training)."""
    side_w, side_h = min(side, width), min(side, height)
    left = int(round((width - side_w) / 2.0))
    top = int(round((height - side_h) / 2.0))
    return left, top, left + side_w, top + side_h
