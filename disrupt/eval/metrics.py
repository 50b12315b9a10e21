"""Image comparison metrics, named by what they compute.

Every function takes two tensors of the same shape ``(B,C,H,W)`` (``C`` is 3 for
RGB) with values in ``[0,1]`` and returns a ``(B,)`` tensor, one value per image.
They are plain tensor code: differentiable where the maths is, on any device.

Two uses:

- :func:`output_distortion` compares a generator's output on the protected image
  with its output on the clean image: large is good (the deepfake is broken).
- :func:`perceptibility` compares the protected image with the original: small is
  good (the perturbation is hard to see). Compute it on the 8-bit image that was
  saved and reloaded, not on the float tensor.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

__all__ = [
    "RUIZ_THRESHOLD",
    "SSIM_WINDOW",
    "disrupted",
    "l1",
    "l2",
    "linf_255",
    "output_distortion",
    "perceptibility",
    "psnr",
    "ruiz_mse",
    "ssim",
    "ssim_map",
]

#: Success threshold of Ruiz et al. on :func:`ruiz_mse` (outputs on ``[-1,1]``).
#: MSE 0.05 on ``[-1,1]`` is 0.0125 on ``[0,1]``: about 19 dB PSNR between the two
#: outputs, or an RMS change of about 28.5/255 per pixel and channel.
RUIZ_THRESHOLD = 0.05

#: Default SSIM window (Gaussian, sigma 1.5), as in Wang et al. 2004.
SSIM_WINDOW = 11
#: :func:`ssim` works in bands of about this many values (rows x width x B x C) so a
#: 12-megapixel photo does not need ten photo-sized temporaries at once.
SSIM_BAND_PIXELS = 1 << 21


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.ndim != 4:
        raise ValueError(f"expected images of shape (B,C,H,W), got {tuple(a.shape)}")


def _per_image_mean(x: Tensor) -> Tensor:
    return x.flatten(1).mean(dim=1)


def ruiz_mse(y_adv: Tensor, y_clean: Tensor) -> Tensor:
    """Ruiz et al.'s "L2 error": MSE between two generator outputs on the ``[-1,1]`` scale.

    Equal to ``4 * MSE`` on ``[0,1]``. Ruiz et al. (2020, "Disrupting Deepfakes")
    count an image as disrupted when this exceeds :data:`RUIZ_THRESHOLD` (0.05),
    averaged over all pixels and channels.

    Args:
        y_adv: ``(B,C,H,W)`` output on the protected image, in ``[0,1]``.
        y_clean: ``(B,C,H,W)`` output on the clean image, in ``[0,1]``.

    Returns:
        ``(B,)`` values in ``[0,4]``.
    """
    _check_pair(y_adv, y_clean)
    return 4.0 * _per_image_mean((y_adv - y_clean).square())


def disrupted(y_adv: Tensor, y_clean: Tensor, threshold: float = RUIZ_THRESHOLD) -> Tensor:
    """Whether each output counts as disrupted: ``ruiz_mse(y_adv, y_clean) > threshold``.

    With the default threshold 0.05 on the ``[-1,1]`` scale, that is a PSNR below
    about 19 dB between the two outputs, an RMS change above about 28.5/255.

    Args:
        y_adv: ``(B,C,H,W)`` in ``[0,1]``.
        y_clean: ``(B,C,H,W)`` in ``[0,1]``.
        threshold: on the ``[-1,1]`` MSE scale (strictly greater counts).

    Returns:
        ``(B,)`` bool tensor.
    """
    return ruiz_mse(y_adv, y_clean) > threshold


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute difference on the ``[0,1]`` scale.

    Args:
        a, b: ``(B,C,H,W)`` in ``[0,1]``.

    Returns:
        ``(B,)`` values in ``[0,1]``.
    """
    _check_pair(a, b)
    return _per_image_mean((a - b).abs())


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB: ``10 * log10(data_range**2 / MSE)``.

    Identical images give ``+inf`` (no noise), which is kept rather than capped so
    that averages over a batch show it; filter with ``torch.isfinite`` if needed.

    Args:
        a, b: ``(B,C,H,W)``, values in ``[0, data_range]``.
        data_range: the peak value (1 for ``[0,1]`` images).

    Returns:
        ``(B,)`` in dB; higher means more alike.
    """
    _check_pair(a, b)
    mse = _per_image_mean((a - b).square())
    return 10.0 * torch.log10(data_range**2 / mse)


def _ssim_window(window_size: int, h: int, w: int) -> int:
    """The window :func:`ssim` uses on an ``h x w`` image: the largest odd one that fits."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    window = min(window_size, h, w)
    if window % 2 == 0:
        window -= 1
    return window


def _ssim_map_box(
    a: Tensor, b: Tensor, window: int, top: int, bottom: int, left: int, right: int
) -> Tensor:
    """The whole-image SSIM map over rows ``top:bottom`` and columns ``left:right``.

    Computed on that box plus ``window // 2`` rows and columns of real context on each
    side (fewer at the image's edge, where kornia reflects exactly as it would for the
    whole image), so it equals the crop of the whole-image map without computing it.
    """
    pad = window // 2
    h, w = a.shape[-2:]
    r0, r1 = max(0, top - pad), min(h, bottom + pad)
    c0, c1 = max(0, left - pad), min(w, right + pad)
    m = kornia.metrics.ssim(a[..., r0:r1, c0:c1], b[..., r0:r1, c0:c1], window, max_val=1.0)
    return m[..., top - r0 : bottom - r0, left - c0 : right - c0]


def ssim_map(
    a: Tensor,
    b: Tensor,
    window_size: int = SSIM_WINDOW,
    box: tuple[int, int, int, int] | None = None,
) -> Tensor:
    """The SSIM map that :func:`ssim` averages: one value per pixel and channel.

    Same window as :func:`ssim` (Gaussian, sigma 1.5, shrunk to the largest odd size
    that fits the whole image), so ``ssim_map(a, b).mean((1, 2, 3))`` is ``ssim(a, b)``.

    Args:
        a, b: ``(B,C,H,W)`` in ``[0,1]``.
        window_size: odd window side, 11 by default.
        box: ``(top, bottom, left, right)`` to get only ``map[..., top:bottom,
            left:right]``, computed from that box and ``window // 2`` pixels of context
            around it (equal to cropping the whole map, at a box's cost).

    Returns:
        ``(B,C,H,W)`` (or the box's size) values in ``[-1,1]``; 1 where identical.
    """
    _check_pair(a, b)
    h, w = a.shape[-2:]
    window = _ssim_window(window_size, h, w)
    top, bottom, left, right = (0, h, 0, w) if box is None else box
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise ValueError(f"box {box} is empty or outside the {h}x{w} image")
    return _ssim_map_box(a, b, window, top, bottom, left, right)


def ssim(a: Tensor, b: Tensor, window_size: int = SSIM_WINDOW) -> Tensor:
    """Structural similarity (Wang et al. 2004), averaged over pixels and channels.

    Uses ``kornia.metrics.ssim`` (Gaussian window, sigma 1.5, ``max_val=1``). When
    an image is smaller than the window, the largest odd window that fits is used.
    :func:`ssim_map` gives the map this averages.

    Args:
        a, b: ``(B,C,H,W)`` in ``[0,1]``.
        window_size: odd window side, 11 by default.

    Returns:
        ``(B,)`` values in ``[-1,1]``; 1 for identical images.
    """
    _check_pair(a, b)
    h, w = a.shape[-2:]
    window = _ssim_window(window_size, h, w)
    rows = max(window, SSIM_BAND_PIXELS // max(1, w * a.shape[0] * a.shape[1]))
    if h <= rows:
        return _per_image_mean(kornia.metrics.ssim(a, b, window, max_val=1.0))
    # A large photo: the SSIM map in bands of rows, each computed with `window // 2`
    # extra rows of real context on either side (so equal to the whole-image map),
    # keeping a band's worth of kornia's ~10 full-size temporaries instead of a photo's.
    # A band whose rows and context are identical in a and b is skipped: SSIM is
    # exactly 1 there (numerator and denominator are the same floats), and protect
    # changes only the face of a large photo (a 12 MP photo: 4.5 -> 1 s of metrics).
    # Within a band, likewise, only the columns within `pad` of a changed one are
    # computed: every other pixel's window is identical in a and b.
    total = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    pad = window // 2
    for top in range(0, h, rows):
        bottom = min(h, top + rows)
        context = slice(max(0, top - pad), min(h, bottom + pad))
        changed = (a[..., context, :] != b[..., context, :]).flatten(0, 2).any(dim=0)
        columns = changed.nonzero().flatten()
        if columns.numel() == 0:
            total += float(a.shape[1] * (bottom - top) * w)
            continue
        left = max(0, int(columns[0]) - pad)
        right = min(w, int(columns[-1]) + 1 + pad)
        band = _ssim_map_box(a, b, window, top, bottom, left, right)
        total += band.flatten(1).double().sum(dim=1)
        total += float(a.shape[1] * (bottom - top) * (w - (right - left)))
    return (total / (a.shape[1] * h * w)).to(a.dtype)


def linf_255(a: Tensor, b: Tensor) -> Tensor:
    """Largest absolute difference, in 8-bit levels (``/255`` units).

    Args:
        a, b: ``(B,C,H,W)`` in ``[0,1]``.

    Returns:
        ``(B,)`` values in ``[0,255]``; an ``eps=8/255`` budget shows as 8.
    """
    _check_pair(a, b)
    return (a - b).abs().flatten(1).amax(dim=1) * 255.0


def l2(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean norm of the difference per image, on the ``[0,1]`` scale.

    Summed over all pixels and channels, so it grows with image size.

    Args:
        a, b: ``(B,C,H,W)`` in ``[0,1]``.

    Returns:
        ``(B,)`` non-negative values.
    """
    _check_pair(a, b)
    return (a - b).flatten(1).norm(dim=1)


def perceptibility(x_adv: Tensor, x: Tensor) -> dict[str, Tensor]:
    """How visible the perturbation ``x_adv - x`` is.

    Args:
        x_adv: ``(B,3,H,W)`` protected image in ``[0,1]`` (best: saved and reloaded).
        x: ``(B,3,H,W)`` original in ``[0,1]``.

    Returns:
        ``{"psnr", "ssim", "linf_255", "l2"}``, each ``(B,)``.
    """
    return {
        "psnr": psnr(x_adv, x),
        "ssim": ssim(x_adv, x),
        "linf_255": linf_255(x_adv, x),
        "l2": l2(x_adv, x),
    }


def output_distortion(
    y_adv: Tensor, y_clean: Tensor, threshold: float = RUIZ_THRESHOLD
) -> dict[str, Tensor]:
    """How much a generator's output changed because of the perturbation.

    Args:
        y_adv: ``(B,3,H,W)`` output on the protected image, in ``[0,1]``.
        y_clean: ``(B,3,H,W)`` output on the clean image, in ``[0,1]``.
        threshold: ``disrupted`` threshold on :func:`ruiz_mse`.

    Returns:
        ``{"ruiz_mse", "disrupted", "l1", "psnr", "ssim"}``, each ``(B,)``
        (``disrupted`` is bool).
    """
    mse = ruiz_mse(y_adv, y_clean)
    return {
        "ruiz_mse": mse,
        "disrupted": mse > threshold,
        "l1": l1(y_adv, y_clean),
        "psnr": psnr(y_adv, y_clean),
        "ssim": ssim(y_adv, y_clean),
    }
