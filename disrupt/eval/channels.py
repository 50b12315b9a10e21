"""Evaluation channels: what may happen to a protected photo before a manipulator uses it.

Each channel is a plain function on a batch ``(B, 3, H, W)`` of float images in
``[0, 1]`` that returns a batch of the same shape and range. They are *evaluation*
channels, not attack components: :func:`jpeg` and :func:`resize` go through real
Pillow encoders on 8-bit pixels (not differentiable, output on the 8-bit grid);
:func:`gaussian_blur` is a kornia filter (differentiable, float output).

- :func:`jpeg`: Pillow JPEG encode/decode at ``quality`` with Pillow's default chroma
  subsampling (4:2:0, what most sites and phones produce) and no optimisation
  flags: deterministic.
- :func:`resize`: downscale by ``scale`` and back to the original size, both with
  Pillow's bicubic filter (antialiased when shrinking), on 8-bit pixels.
- :func:`gaussian_blur`: Gaussian blur, kernel side ``2 * ceil(3 * sigma) + 1``,
  reflected borders.

:class:`Channel` is the thin named wrapper; :func:`parse_channel` turns a spec such as
``"jpeg:75"``, ``"resize:0.5"``, ``"blur:1.5"`` or ``"none"`` into one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
from PIL import Image
from torch import Tensor

from disrupt.imaging.pixels import from_pil, to_pil

__all__ = [
    "DEFAULT_CHANNELS",
    "Channel",
    "gaussian_blur",
    "identity",
    "jpeg",
    "parse_channel",
    "resize",
]

#: The robustness channels the benchmark measures by default.
DEFAULT_CHANNELS: tuple[str, ...] = (
    "none", "jpeg:95", "jpeg:75", "jpeg:50", "resize:0.5", "blur:1.5",
)


def _check(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a float batch (B, 3, H, W) in [0, 1], got {tuple(x.shape)}")


def _to_pil(image: Tensor) -> Image.Image:
    """``(3, H, W)`` in ``[0, 1]`` -> 8-bit RGB PIL image (rounded)."""
    return to_pil(image.float())


def _from_pil(image: Image.Image, like: Tensor) -> Tensor:
    """8-bit RGB PIL image -> ``(3, H, W)`` float in ``[0, 1]`` on ``like``'s device/dtype."""
    return from_pil(image)[0].to(like)


def _per_image(x: Tensor, fn: Callable[[Image.Image], Image.Image]) -> Tensor:
    _check(x)
    return torch.stack([_from_pil(fn(_to_pil(img)), x) for img in x])


def identity(x: Tensor) -> Tensor:
    """No channel: returns ``x`` itself. ``(B, 3, H, W)`` -> same tensor."""
    _check(x)
    return x


def jpeg(x: Tensor, quality: int) -> Tensor:
    """JPEG-compress every image with Pillow and decode it again.

    Args:
        x: ``(B, 3, H, W)`` float in ``[0, 1]``; rounded to 8 bits before encoding.
        quality: Pillow JPEG quality, 1 to 100.

    Returns:
        ``(B, 3, H, W)`` float in ``[0, 1]`` on the 8-bit grid, same device and dtype.
        Deterministic: the same input gives the same output.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")

    def codec(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        with Image.open(buf) as decoded:
            return decoded.convert("RGB")

    return _per_image(x, codec)


def resize(x: Tensor, scale: float) -> Tensor:
    """Downscale every image by ``scale`` and back up to its size (Pillow bicubic).

    Args:
        x: ``(B, 3, H, W)`` float in ``[0, 1]``; rounded to 8 bits first.
        scale: size factor in ``(0, 1]``; the small side is ``max(1, round(side * scale))``.

    Returns:
        ``(B, 3, H, W)``, the input's size, float in ``[0, 1]`` on the 8-bit grid.
    """
    if not 0 < scale <= 1:
        raise ValueError(f"resize scale must be in (0, 1], got {scale}")
    height, width = int(x.shape[-2]), int(x.shape[-1])
    small = (max(1, round(width * scale)), max(1, round(height * scale)))

    def there_and_back(im: Image.Image) -> Image.Image:
        bicubic = Image.Resampling.BICUBIC
        return im.resize(small, bicubic).resize((width, height), bicubic)

    return _per_image(x, there_and_back)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kornia, reflected borders).

    Args:
        x: ``(B, 3, H, W)`` float in ``[0, 1]``.
        sigma: standard deviation in pixels, ``> 0``; kernel side ``2 * ceil(3 * sigma) + 1``.

    Returns:
        ``(B, 3, H, W)`` float in ``[0, 1]``; differentiable in ``x``.
    """
    _check(x)
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    side = 2 * math.ceil(3 * sigma) + 1
    out = kornia.filters.gaussian_blur2d(x, (side, side), (sigma, sigma), border_type="reflect")
    return out.clamp(0.0, 1.0)


@dataclass(frozen=True)
class Channel:
    """A named evaluation channel: ``channel(x)`` applies it to ``(B, 3, H, W)`` in ``[0, 1]``.

    ``kind`` is ``"none"``, ``"jpeg"``, ``"resize"`` or ``"blur"``; ``value`` its
    parameter (quality, scale, sigma; ``0`` for ``none``). ``name`` is the spec it
    parses from (``"jpeg:75"``).
    """

    kind: str
    value: float = 0.0

    @property
    def name(self) -> str:
        if self.kind == "none":
            return "none"
        value = int(self.value) if self.kind == "jpeg" else self.value
        return f"{self.kind}:{value:g}"

    def __call__(self, x: Tensor) -> Tensor:
        if self.kind == "none":
            return identity(x)
        if self.kind == "jpeg":
            return jpeg(x, int(self.value))
        if self.kind == "resize":
            return resize(x, self.value)
        return gaussian_blur(x, self.value)


def parse_channel(spec: str) -> Channel:
    """``"none"``, ``"jpeg:Q"``, ``"resize:S"`` or ``"blur:SIGMA"`` -> :class:`Channel`.

    Raises:
        ValueError: an unknown kind or a value out of range (message names the spec).
    """
    text = spec.strip().lower()
    if text in ("none", "identity", ""):
        return Channel("none")
    kind, sep, raw = text.partition(":")
    if not sep:
        raise ValueError(f"channel {spec!r}: use none, jpeg:Q, resize:S or blur:SIGMA")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"channel {spec!r}: {raw!r} is not a number") from None
    if kind == "jpeg":
        if value != int(value) or not 1 <= value <= 100:
            raise ValueError(f"channel {spec!r}: JPEG quality must be an integer in 1..100")
    elif kind == "resize":
        if not 0 < value <= 1:
            raise ValueError(f"channel {spec!r}: resize scale must be in (0, 1]")
    elif kind == "blur":
        if not 0 < value <= 50:
            raise ValueError(f"channel {spec!r}: blur sigma must be in (0, 50]")
    else:
        raise ValueError(f"channel {spec!r}: unknown kind {kind!r} (none, jpeg, resize, blur)")
    return Channel(kind, value)
