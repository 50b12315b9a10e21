"""Objectives that survive a blur defence: Ruiz et al.'s spread-spectrum attack.

A manipulator can blur a photo before feeding it to the generator, which washes out
a perturbation tuned to the unblurred image. Ruiz et al. (2020, Sec. 3.4) evade this
by changing the blur at every attack step, so the perturbation is pushed to work
through many blurs at little extra cost (one blur per step, not an expectation over
all of them).

:class:`SpreadSpectrum` wraps any objective: at step ``t`` (its ``t``-th call) it
applies blur ``t mod len(blurs)`` to ``x_adv``, differentiably (kornia), then scores
with the objective built for that blur. The default cycle is the paper's: Gaussian
blurs with sigma 1, 2, 3 and box blurs of side 5, 7, 9, in that order.

Expectation over transformation (EOT; Athalye et al., "Synthesizing Robust
Adversarial Examples", ICML 2018): :class:`ExpectationOverTransforms` wraps any
objective and scores it on randomly transformed copies of ``x_adv``, drawn from a
seeded ``torch.Generator``. The random transforms, each differentiable and each
``(B, 3, H, W)`` in ``[0, 1]`` -> same shape and range:

- :class:`RandomJPEG`: kornia's differentiable JPEG (computed by
  :func:`disrupt.core.jpeg.jpeg420_differentiable`), quality in ``[50, 95]``.
- :class:`FixedJPEG`: the codec our JPEG outputs are saved with (4:4:4, one quality).
- :class:`RandomResize`: shrink by a scale in ``[0.5, 1]`` (antialiased) and back.
- :class:`RandomGaussianBlur` (sigma in ``[0.5, 2]``) and :class:`RandomBoxBlur`
  (side 3 or 5), both through :class:`Blur`.
- :class:`RandomCropResize`: a few pixels cropped off each edge, resized back.
- :class:`Identity`: the untransformed view.
- :class:`InputDiversity`: Xie et al.'s random resize-and-pad (CVPR 2019), for
  transfer to generators the attack cannot see.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol, runtime_checkable

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor

from disrupt.core.jpeg import jpeg420_differentiable, jpeg444_differentiable

__all__ = [
    "DEFAULT_EOT_TRANSFORMS",
    "Blur",
    "FixedJPEG",
    "Identity",
    "InputDiversity",
    "JPEG_EOT_TRANSFORMS",
    "RandomBoxBlur",
    "RandomCropResize",
    "RandomGaussianBlur",
    "RandomJPEG",
    "RandomResize",
    "RandomTransform",
    "Transform",
    "crop_resize_margins",
    "identity",
    "input_diversity",
    "jpeg_differentiable",
    "resize_down_up",
]


@dataclass(frozen=True)
class Blur:
    """A differentiable blur: ``kind`` ``"gaussian"`` (``size`` = sigma in pixels) or
    ``"box"`` (``size`` = odd kernel side in pixels).

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` in ``[0, 1]``; reflected borders.
    """

    kind: str
    size: float

    def __post_init__(self) -> None:
        if self.kind not in ("gaussian", "box"):
            raise ValueError(f"blur kind must be 'gaussian' or 'box', got {self.kind!r}")
        if self.kind == "box" and (self.size != int(self.size) or int(self.size) % 2 == 0
                                   or self.size < 1):
            raise ValueError(f"box blur side must be a positive odd integer, got {self.size}")
        if self.kind == "gaussian" and not self.size > 0:
            raise ValueError(f"gaussian blur sigma must be > 0, got {self.size}")

    @property
    def name(self) -> str:
        return f"gaussian:{self.size:g}" if self.kind == "gaussian" else f"box:{int(self.size)}"

    def __call__(self, x: Tensor) -> Tensor:
        if self.kind == "gaussian":
            side = 2 * math.ceil(3 * self.size) + 1
            return kornia.filters.gaussian_blur2d(
                x, (side, side), (self.size, self.size), border_type="reflect"
            )
        k = int(self.size)
        return kornia.filters.box_blur(x, (k, k), border_type="reflect")


# --------------------------------------------------------------------------------------
# Expectation over transformation (EOT)
#
# A *random transform* draws its parameters from a seeded ``torch.Generator`` and returns
# a deterministic :data:`Transform`; :class:`ExpectationOverTransforms` averages an
# objective over such draws (Athalye et al., "Synthesizing Robust Adversarial Examples",
# ICML 2018). Every transform maps ``(B, 3, H, W)`` in ``[0, 1]`` to the same shape and
# range and is differentiable in its input.
# --------------------------------------------------------------------------------------

Transform = Callable[[Tensor], Tensor]
"""A deterministic image op: ``(B, 3, H, W)`` in ``[0, 1]`` -> same shape, ``[0, 1]``."""


@runtime_checkable
class RandomTransform(Protocol):
    """A family of transforms: ``sample(generator)`` draws one member's parameters.

    ``name`` identifies the family in reports; ``sample`` returns a deterministic
    :data:`Transform`, so the same draw can be applied to several tensors.
    """

    @property
    def name(self) -> str: ...

    def sample(self, generator: torch.Generator | None = None) -> Transform: ...


def draw_uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def draw_int(lo: int, hi: int, generator: torch.Generator | None) -> int:
    """An integer uniform in ``[lo, hi]`` (both included)."""
    return int(torch.randint(lo, hi + 1, (), generator=generator))


def _check_range(name: str, lo: float, hi: float, floor: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and floor <= lo <= hi):
        raise ValueError(f"{name} range must satisfy {floor} <= low <= high, got ({lo}, {hi})")


def identity(x: Tensor) -> Tensor:
    """No change: ``(B, 3, H, W)`` -> the same tensor."""
    return x


def jpeg_differentiable(x: Tensor, quality: float) -> Tensor:
    """Differentiable JPEG at ``quality`` in ``[1, 100]``: kornia's codec (4:2:0 chroma).

    The function is kornia's ``jpeg_codec_differentiable`` (after Reich et al.,
    "Differentiable JPEG: the devil is in the details", WACV 2024), computed by
    :func:`disrupt.core.jpeg.jpeg420_differentiable`, which gives the same values and
    gradients 2-3x faster. The quality is clamped to ``[1, 100]``.

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` in ``[0, 1]`` (any ``H, W >= 2``).
    """
    return jpeg420_differentiable(x, max(1.0, min(100.0, float(quality))))


def resize_down_up(x: Tensor, scale: float) -> Tensor:
    """Shrink by ``scale`` in ``(0, 1]`` (bilinear, antialiased) and enlarge back (bilinear).

    Models a site that downsizes an upload, seen again at the original size.

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` in ``[0, 1]``.
    """
    h, w = x.shape[-2:]
    small = (max(1, round(h * scale)), max(1, round(w * scale)))
    if small == (h, w):
        return x
    down = F.interpolate(x, size=small, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def crop_resize_margins(x: Tensor, margins: tuple[int, int, int, int]) -> Tensor:
    """Cut ``(left, top, right, bottom)`` pixels off the edges and resize back (bilinear).

    A slightly different crop of the same picture: a shift of a few pixels plus a small
    zoom, as two face croppers disagreeing on the box would produce.

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` in ``[0, 1]``.
    """
    left, top, right, bottom = margins
    h, w = x.shape[-2:]
    if min(margins) < 0 or left + right >= w or top + bottom >= h:
        raise ValueError(f"margins {margins} do not fit a {w}x{h} image")
    if margins == (0, 0, 0, 0):
        return x
    crop = x[..., top : h - bottom, left : w - right]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Identity:
    """The transform that changes nothing: keeps the clean view in an EOT mix."""

    name: str = "identity"

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        return identity


@dataclass(frozen=True)
class RandomJPEG:
    """Differentiable JPEG with quality uniform in ``quality`` (default ``[50, 95]``).

    Source: kornia.enhance.jpeg_codec_differentiable (Reich et al., WACV 2024), computed
    by :func:`disrupt.core.jpeg.jpeg420_differentiable`; JPEG as
    an EOT transform follows Shin & Song (2017) and Athalye et al. (2018).
    """

    quality: tuple[float, float] = (50.0, 95.0)
    name: str = "jpeg"

    def __post_init__(self) -> None:
        _check_range("quality", *self.quality, floor=1.0)
        if self.quality[1] > 100:
            raise ValueError(f"quality must be <= 100, got {self.quality}")

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        q = draw_uniform(*self.quality, generator)
        return partial(jpeg_differentiable, quality=q)


@dataclass(frozen=True)
class FixedJPEG:
    """Differentiable JPEG at one quality with 4:4:4 chroma: the codec a JPEG output
    is saved with (:func:`disrupt.core.jpeg.jpeg444_differentiable`).

    Not random: every draw is the same codec. In an EOT mix
    it stands for "the file as written" when the output is a JPEG, in place of
    :class:`Identity` (a lossy output is never seen unchanged).
    """

    quality: float = 95.0
    name: str = "jpeg-output"

    def __post_init__(self) -> None:
        _check_range("quality", self.quality, self.quality, floor=1.0)
        if self.quality > 100:
            raise ValueError(f"quality must be <= 100, got {self.quality}")

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        return partial(jpeg444_differentiable, quality=self.quality)


@dataclass(frozen=True)
class RandomResize:
    """Down-and-up resize with scale uniform in ``scale`` (default ``[0.5, 1.0]``).

    Source: resizing as an EOT transform, Athalye et al. (2018); :func:`resize_down_up`.
    """

    scale: tuple[float, float] = (0.5, 1.0)
    name: str = "resize"

    def __post_init__(self) -> None:
        _check_range("scale", *self.scale, floor=1e-3)
        if self.scale[1] > 1:
            raise ValueError(f"scale must be <= 1, got {self.scale}")

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        return partial(resize_down_up, scale=draw_uniform(*self.scale, generator))


@dataclass(frozen=True)
class RandomGaussianBlur:
    """Gaussian blur with sigma uniform in ``sigma`` (default ``[0.5, 2.0]`` pixels).

    Source: blur as a defence against disruption, Ruiz et al. (2020, Sec. 3.4); applied
    through :class:`Blur` (kornia ``gaussian_blur2d``, kernel side ``2 * ceil(3 sigma) + 1``).
    """

    sigma: tuple[float, float] = (0.5, 2.0)
    name: str = "gaussian_blur"

    def __post_init__(self) -> None:
        _check_range("sigma", *self.sigma, floor=1e-3)

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        blur = Blur("gaussian", draw_uniform(*self.sigma, generator))
        return lambda x: blur(x).clamp(0.0, 1.0)


@dataclass(frozen=True)
class RandomBoxBlur:
    """Box blur whose odd side is drawn uniformly from ``sizes`` (default 3 or 5).

    Source: Ruiz et al. (2020, Sec. 3.4); applied through :class:`Blur` (kornia ``box_blur``).
    """

    sizes: tuple[int, ...] = (3, 5)
    name: str = "box_blur"

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("sizes must not be empty")
        for k in self.sizes:
            Blur("box", k)  # validates: positive odd integer

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        blur = Blur("box", self.sizes[draw_int(0, len(self.sizes) - 1, generator)])
        return lambda x: blur(x).clamp(0.0, 1.0)


@dataclass(frozen=True)
class RandomCropResize:
    """Crop ``0..margin`` pixels off each edge (drawn independently), resize back.

    A shift of up to ``margin`` pixels combined with a zoom of up to ``2 * margin``
    pixels: the disagreement between two croppers (:func:`crop_resize_margins`).
    """

    margin: int = 4
    name: str = "crop"

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        m = tuple(draw_int(0, self.margin, generator) for _ in range(4))
        margins = (m[0], m[1], m[2], m[3])

        def apply(x: Tensor) -> Tensor:
            h, w = x.shape[-2:]
            fits = margins[0] + margins[2] < w and margins[1] + margins[3] < h
            return crop_resize_margins(x, margins) if fits else x

        return apply


def input_diversity(x: Tensor, size: int, offset: tuple[int, int], ratio: float) -> Tensor:
    """Xie et al.'s input diversity at a fixed draw, returned at the input's size.

    Resize ``x`` to ``size`` (the shorter side; the other keeps the aspect), zero-pad at
    ``offset = (left, top)`` to ``ratio`` times the original size, then resize the
    padded canvas back to the original size (bilinear, antialiased).

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` in ``[0, 1]``.
    """
    h, w = x.shape[-2:]
    big_h, big_w = round(h * ratio), round(w * ratio)
    new_h = max(1, min(big_h, size))
    new_w = max(1, min(big_w, round(w * new_h / h)))
    small = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False,
                          antialias=True)
    left = min(offset[0], big_w - new_w)
    top = min(offset[1], big_h - new_h)
    canvas = F.pad(small, (left, big_w - new_w - left, top, big_h - new_h - top), value=0.0)
    return F.interpolate(canvas, size=(h, w), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0.0, 1.0)


@dataclass(frozen=True)
class InputDiversity:
    """Random resize and pad for transfer to unseen generators (DI-FGSM).

    Source: Xie et al., "Improving Transferability of Adversarial Examples with Input
    Diversity", CVPR 2019. With probability ``probability`` the image is resized to a
    random size between its own and ``ratio`` times it and zero-padded at a random
    place to ``ratio`` times its size (the paper's 299 -> [299, 330) -> 330 is
    ``ratio = 1.1``); otherwise it is left as is. Unlike the paper's, the canvas is
    resized back to the input's size so the contract (same shape) holds; the targets
    resize to their own input size anyway, so only the relative geometry matters.
    """

    ratio: float = 1.1
    probability: float = 0.5
    name: str = "input_diversity"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio >= 1):
            raise ValueError(f"ratio must be >= 1, got {self.ratio}")
        if not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {self.probability}")

    def sample(self, generator: torch.Generator | None = None) -> Transform:
        if float(torch.rand((), generator=generator)) >= self.probability:
            # Draw the same number of values either way, so later draws do not shift.
            torch.rand((3,), generator=generator)
            return identity
        u = torch.rand((3,), generator=generator).tolist()
        ratio = self.ratio

        def apply(x: Tensor) -> Tensor:
            h, w = x.shape[-2:]
            big_h, big_w = round(h * ratio), round(w * ratio)
            size = h + int(u[0] * (big_h - h + 1))
            size = min(size, big_h)
            new_w = min(big_w, round(w * size / h))
            offset = (int(u[1] * (big_w - new_w + 1)), int(u[2] * (big_h - size + 1)))
            return input_diversity(x, size, offset, ratio)

        return apply


#: The default EOT mix: the clean view, JPEG 50-95, resize 0.5-1, Gaussian blur sigma
#: 0.5-2, box blur 3 or 5, and a crop jitter of up to 4 pixels.
DEFAULT_EOT_TRANSFORMS: tuple[RandomTransform, ...] = (
    Identity(),
    RandomJPEG(),
    RandomResize(),
    RandomGaussianBlur(),
    RandomBoxBlur(),
    RandomCropResize(),
)

#: The EOT mix ``protect()`` uses: half the draws see the photo as saved, half a JPEG
#: at quality 50-95 (the likeliest thing to happen to a posted photo). Measured on 8
#: held-apart CelebA faces against the four bundled models at L-inf 8/255, PGD 20,
#: EOT applied to the 89x89 face: StarGAN disrupted after JPEG 75 on 25% of outputs
#: with this mix, 5% with :data:`DEFAULT_EOT_TRANSFORMS` (whose blurs and resizes
#: pull the 20 noisy gradient steps apart); also better as saved (82% vs 58%) and
#: after a 50% resize (48% vs 32%). Blur still removes it (see the README).
JPEG_EOT_TRANSFORMS: tuple[RandomTransform, ...] = (Identity(), RandomJPEG())


