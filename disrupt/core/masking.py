"""Protect only part of a photo: user masks and the masked objective.

A mask is a ``(1, 1, H, W)`` float tensor in ``[0, 1]`` the photo's size: 1 (white)
where the photo may be perturbed, 0 (black) where it must stay exactly as it was,
grey for a proportionally smaller budget. It acts in two places, so attacks stay
model-agnostic (they never see it):

- inside the objective, the attack's point ``x_adv`` is replaced by
  ``x + mask * (x_adv - x)`` (:class:`MaskedObjective`), so the gradient only
  rewards changes the mask lets through;
- after the attack, :func:`apply_mask` sets the perturbation to exactly
  ``mask * (x_adv - x)``: zero where the mask is 0, a fraction of the budget where
  it is grey (a sign-gradient step moves a grey pixel as far as a white one, so
  the scaling happens here).
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

from attacks import Objective
from disrupt.errors import ImageError
from disrupt.imaging import ImageInput, load_image

__all__ = ["HighPassObjective", "MaskedObjective", "apply_mask", "band_pass", "high_pass",
           "load_mask", "low_pass", "low_pass_coarse", "scale_chroma", "texture_caps"]

#: Local luminance standard deviation (on ``[0, 1]``) at which a pixel gets the full cap.
TEXTURE_FULL = 0.04
#: The smallest per-pixel cap: one 8-bit level, so flat skin changes by at most that.
CAP_FLOOR = 1 / 255


def load_mask(mask: ImageInput, size: tuple[int, int], *, name: str | None = None) -> Tensor:
    """Read a mask for a photo of ``size = (width, height)``.

    Args:
        mask: an image file (path, bytes, stream), PIL image, numpy array ``(H, W)``
            or ``(H, W, C)``, or a tensor ``(H, W)``, ``(1, H, W)``, ``(1, 1, H, W)``
            (float in ``[0, 1]``) or anything :func:`~disrupt.imaging.load_image`
            reads. Colour images are converted to luminance (Rec. 601 weights).
        size: the photo's ``(width, height)``, as PIL reports sizes.
        name: how to name the mask in errors (default: its path, or ``"mask"``).

    Returns:
        ``(1, 1, H, W)`` float32 in ``[0, 1]``.

    Raises:
        ImageError: ``"<mask>: ..."`` when it cannot be read, is not the photo's
            size, or is black everywhere (nothing to protect).
    """
    label = name or (os.fspath(mask) if isinstance(mask, (str, os.PathLike)) else "mask")
    if isinstance(mask, Tensor):
        m = mask.detach().float()
        while m.ndim < 4:
            m = m.unsqueeze(0)
        if m.ndim != 4 or m.shape[:2] != (1, 1):
            if m.ndim == 4 and m.shape[:2] == (1, 3):
                m = _luminance(m)
            else:
                raise ValueError(f"mask tensor must be (H,W), (1,H,W) or (1,1,H,W), "
                                 f"got {tuple(mask.shape)}")
        if m.numel() and (m.min() < 0 or m.max() > 1):
            raise ValueError("mask tensor values must be in [0, 1]")
    else:
        try:
            loaded = load_image(mask)
        except (ValueError, TypeError) as exc:
            raise ImageError(f"{label}: not a usable mask ({exc})") from None
        m = _luminance(loaded.rgb)
    h, w = m.shape[-2:]
    if (w, h) != tuple(size):
        raise ImageError(
            f"{label}: mask is {w}x{h} but the photo is {size[0]}x{size[1]}; "
            "it must be the same size"
        )
    if not bool((m > 0).any()):
        raise ImageError(f"{label}: mask is black everywhere, so nothing would be protected")
    return m.contiguous()


def _luminance(rgb: Tensor) -> Tensor:
    """``(1, 3, H, W)`` -> ``(1, 1, H, W)`` Rec. 601 luminance, clamped to ``[0, 1]``."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device)
    return (rgb * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True).clamp(0.0, 1.0)


def apply_mask(x_adv: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    """``x + mask * (x_adv - x)``: exactly ``x`` where the mask is 0.

    Shape:
        ``x_adv``, ``x``: ``(B, 3, H, W)`` in ``[0, 1]``; ``mask``: ``(1, 1, H, W)`` or
        ``(B, 1, H, W)`` in ``[0, 1]``. Returns ``(B, 3, H, W)`` in ``[0, 1]``.
    """
    mixed = x + mask * (x_adv - x)
    # Where the mask is exactly 0 the result must be x bit for bit (x + 0 * d is,
    # unless d is inf/NaN); where it is 1, x_adv.
    return torch.where(mask == 0, x, torch.where(mask == 1, x_adv, mixed))


class MaskedObjective:
    """Score ``objective`` at ``x + mask * (x_adv - x)``: only masked-in changes count.

    Args:
        objective: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
        x: the clean batch ``(B, 3, H, W)`` in ``[0, 1]``.
        mask: ``(1, 1, H, W)`` or ``(B, 1, H, W)`` in ``[0, 1]``.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
    """

    def __init__(self, objective: Objective, x: Tensor, mask: Tensor) -> None:
        if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"mask must be (1 or B, 1, H, W) matching x {tuple(x.shape)}, "
                f"got {tuple(mask.shape)}"
            )
        self.objective = objective
        self.x = x.detach()
        self.mask = mask.to(x)

    def __call__(self, x_adv: Tensor) -> Tensor:
        return self.objective(self.x + self.mask * (x_adv - self.x))


def texture_caps(x: Tensor, cap: float, *, window: int = 5, full: float = TEXTURE_FULL,
                 floor: float = CAP_FLOOR) -> Tensor:
    """Per-pixel change caps that follow the image's texture (a just-noticeable-difference
    mask): the eye sees a change on flat skin or sky far sooner than in hair, on edges
    or in fabric, so flat pixels get ``floor`` and textured ones up to ``cap``.

    The texture measure is the local standard deviation of luminance (Rec. 601) over a
    ``window x window`` neighbourhood; a pixel whose neighbourhood varies by ``full``
    (about 10/255) or more gets the whole ``cap``, flatter ones proportionally less,
    never under ``floor`` (one 8-bit level) nor over ``cap``.

    Shape:
        ``x``: ``(1, 3, H, W)`` in ``[0, 1]``. Returns ``(1, 1, H, W)`` caps in
        ``[min(floor, cap), cap]`` on the ``[0, 1]`` scale.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (B, 3, H, W), got {tuple(x.shape)}")
    if not 0 < cap <= 1 or window < 1 or window % 2 == 0 or full <= 0:
        raise ValueError(f"bad texture_caps settings: cap={cap}, window={window}, full={full}")
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    luma = (x.detach() * weights.view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    pool = torch.nn.AvgPool2d(window, stride=1, padding=window // 2, count_include_pad=False)
    mean = pool(luma)
    std = (pool(luma.square()) - mean.square()).clamp_min(0).sqrt()
    share = (std / full).clamp(0.0, 1.0)
    return (cap * share).clamp(min=min(floor, cap), max=cap)


#: Above this sigma (pixels) :func:`high_pass` blurs through the FFT, whose cost does not
#: grow with sigma; at or below it, with kornia's separable kernel.
FFT_BLUR_SIGMA = 6.0


def high_pass(delta: Tensor, sigma: float) -> Tensor:
    """``delta`` less its Gaussian blur: what is left has no colour cast or blotch wider
    than a few ``sigma`` (the eye sees a smooth red patch on a cheek long before fine
    grain of the same energy). Linear, differentiable, and never larger in L2 norm than
    ``delta`` (the filter's gains are in ``[0, 1]``).

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """
    return delta - low_pass(delta, sigma)


def low_pass(delta: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``delta`` with reflected borders (kornia's separable kernel, or
    the FFT above :data:`FFT_BLUR_SIGMA`). After :func:`high_pass` it drops the grain
    finer than ``sigma``, which a generator that shrinks the crop averages away and
    JPEG removes (the perceptual shaping's band-pass; :data:`disrupt.core.pipeline.
    GRAIN_SIGMA_PER_SIDE`). Linear, differentiable, gains in ``[0, 1]``.

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if sigma > FFT_BLUR_SIGMA:
        return _gaussian_blur_fft(delta, sigma)
    import kornia

    side = 2 * math.ceil(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(delta, (side, side), (sigma, sigma),
                                          border_type="reflect")


def _gaussian_blur_fft(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``(B, C, H, W)`` with reflected borders, through the FFT (the same
    filter as kornia's ``gaussian_blur2d`` up to its kernel truncation at 3 sigma, at a
    cost independent of sigma: a 12 MP photo's face crop needs sigma 30)."""
    h, w = x.shape[-2:]
    kind = x.dtype
    if kind in (torch.float16, torch.bfloat16):  # torch's FFT wants float32 or float64
        x = x.float()
    pad_h, pad_w = min(math.ceil(3 * sigma), h - 1), min(math.ceil(3 * sigma), w - 1)
    padded = torch.nn.functional.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    ph, pw = padded.shape[-2:]
    fy = torch.fft.fftfreq(ph, device=x.device, dtype=x.dtype)
    fx = torch.fft.rfftfreq(pw, device=x.device, dtype=x.dtype)
    # The continuous Gaussian's transfer function, exp(-2 pi^2 sigma^2 f^2): gains in (0, 1].
    gain = torch.exp(-2 * math.pi**2 * sigma**2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    blurred = torch.fft.irfft2(torch.fft.rfft2(padded) * gain, s=(ph, pw))
    return blurred[..., pad_h : pad_h + h, pad_w : pad_w + w].to(kind)


#: Above this sigma the attack's objective blurs on a coarser grid
#: (:func:`high_pass_coarse`); the final change keeps the exact :func:`high_pass`.
COARSE_BLUR_SIGMA = 16.0


def high_pass_coarse(delta: Tensor, sigma: float) -> Tensor:
    """:func:`high_pass` with the blur taken on a grid ``f = floor(sigma / 4)`` times
    coarser: ``delta`` is averaged over ``f x f`` blocks, blurred there with sigma
    ``sigma / f`` and interpolated back (bilinear). A blur this wide has almost nothing
    finer than the coarse grid to keep, so the result stays within a few percent of
    the exact one (``tests/test_presets_mask.py``) at a fraction of the cost of the
    FFT pair over the whole region (a 12 MP photo's protect: 30.5 -> 25.0 s,
    ``benchmarks/results/coarse_high_pass.json``). Differentiable; small sigmas fall
    back to :func:`high_pass`.

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """
    factor = math.floor(sigma / 4)
    if sigma <= COARSE_BLUR_SIGMA or factor < 2:
        return high_pass(delta, sigma)
    return delta - _blur_on_coarse_grid(delta, factor, sigma / factor)


def _blur_on_coarse_grid(delta: Tensor, factor: int, coarse_sigma: float) -> Tensor:
    """``delta`` averaged over ``factor x factor`` blocks, blurred there with
    ``coarse_sigma`` (in coarse pixels, reflected borders) and interpolated back
    (bilinear) to ``delta``'s shape."""
    import kornia

    h, w = delta.shape[-2:]
    # Repeat the last row and column up to whole blocks, so every block averages f x f.
    pad_h, pad_w = (-h) % factor, (-w) % factor
    padded = delta
    if pad_h or pad_w:
        padded = torch.nn.functional.pad(delta, (0, pad_w, 0, pad_h), mode="replicate")
    coarse = torch.nn.functional.avg_pool2d(padded, factor)
    side = 2 * math.ceil(3 * coarse_sigma) + 1
    side = min(side, 2 * (min(coarse.shape[-2:]) - 1) + 1)  # reflect needs a smaller kernel
    low = kornia.filters.gaussian_blur2d(coarse, (side, side), (coarse_sigma, coarse_sigma),
                                         border_type="reflect")
    low = torch.nn.functional.interpolate(low, size=padded.shape[-2:], mode="bilinear",
                                          align_corners=False)
    return low[..., :h, :w]


#: At or above this sigma the attack's objective takes :func:`low_pass` on a coarser
#: grid (:func:`low_pass_coarse`); the final change keeps the exact one.
COARSE_LOW_PASS_SIGMA = 4.0


def low_pass_coarse(delta: Tensor, sigma: float) -> Tensor:
    """:func:`low_pass` taken on a grid ``f = floor(sigma / 2)`` times coarser:
    ``delta`` averaged over ``f x f`` blocks, blurred there, interpolated back
    (bilinear). The block average and the interpolation blur too (together a variance
    of about ``f**2 / 4`` pixels squared), so the coarse blur's sigma is reduced to
    keep the total at ``sigma``. What the attack's gradient carries comes back from a
    model input 15 times coarser than a 12 MP photo's face, far below this grid's
    resolution, where the two filters agree to 0.3% (``tests/test_presets_mask.py``);
    on white noise they differ by about 14%, in the grain the low-pass removes anyway.
    Differentiable; sigmas under :data:`COARSE_LOW_PASS_SIGMA` fall back to
    :func:`low_pass`.

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """
    factor = math.floor(sigma / 2)
    if sigma < COARSE_LOW_PASS_SIGMA or factor < 2:
        return low_pass(delta, sigma)
    return _blur_on_coarse_grid(delta, factor, math.sqrt(sigma**2 - factor**2 / 4) / factor)


def band_pass(delta: Tensor, sigma: float, low_sigma: float | None = None, *,
              coarse: bool = False, chroma: float = 1.0) -> Tensor:
    """The perceptual shaping's filter: :func:`high_pass` at ``sigma``, then
    :func:`low_pass` at ``low_sigma`` when given (with ``coarse``, for the attack's
    objective, :func:`high_pass_coarse` and :func:`low_pass_coarse`), then
    :func:`scale_chroma` by ``chroma``. Linear, differentiable, never larger in L2 norm
    than ``delta``.

    Shape:
        ``(B, C, H, W)`` -> same shape.
    """
    fine = high_pass_coarse(delta, sigma) if coarse else high_pass(delta, sigma)
    if low_sigma is not None:
        fine = low_pass_coarse(fine, low_sigma) if coarse else low_pass(fine, low_sigma)
    return scale_chroma(fine, chroma)


def scale_chroma(delta: Tensor, share: float) -> Tensor:
    """Keep a change's grey part (the mean of its R, G and B at each pixel) and
    ``share`` of the rest, its colour. ``share`` 0 leaves a grey change, which JPEG's
    halved, coarsely quantised colour planes cannot remove. The grey part is the
    orthogonal projection on ``(1, 1, 1)``, so the L2 norm never grows.

    Shape:
        ``(B, 3, H, W)`` -> same shape.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"chroma share must be in [0, 1], got {share}")
    if share == 1.0:
        return delta
    grey = delta.mean(dim=1, keepdim=True)
    return grey + share * (delta - grey)


class HighPassObjective:
    """Score ``objective`` at ``x + high_pass(x_adv - x)`` (:func:`high_pass_coarse` for
    wide sigmas): only the fine-grained part of a
    change counts, so the attack gains nothing from colour casts; apply the same
    :func:`high_pass` to the final change (:func:`disrupt.core.pipeline.run_protection`
    does). With ``low_sigma`` the high-passed change is also blurred by
    :func:`low_pass` (a band-pass: neither blotches nor grain finer than the model sees);
    ``chroma`` scales its colour part (:func:`scale_chroma`).

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
    """

    def __init__(self, objective: Objective, x: Tensor, sigma: float,
                 low_sigma: float | None = None, chroma: float = 1.0) -> None:
        if not sigma > 0 or (low_sigma is not None and not low_sigma > 0):
            raise ValueError(f"sigmas must be > 0, got {sigma} and {low_sigma}")
        self.objective = objective
        self.x = x.detach()
        self.sigma = sigma
        self.low_sigma = low_sigma
        self.chroma = chroma

    def __call__(self, x_adv: Tensor) -> Tensor:
        shaped = band_pass(x_adv - self.x, self.sigma, self.low_sigma, coarse=True,
                           chroma=self.chroma)
        return self.objective((self.x + shaped).clamp(0.0, 1.0))
