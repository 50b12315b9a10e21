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

import contextlib
import functools
import importlib.util
import io
import math
import sys
import types
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path

import kornia
import torch
from torch import Tensor, nn

from disrupt.eval.metrics import SSIM_WINDOW, _check_pair, _ssim_map_box, _ssim_window

__all__ = [
    "CHANGED_LEVEL",
    "ST_LPIPS_MIN_SIZE",
    "ST_LPIPS_NETS",
    "ciede2000",
    "region_perceptibility",
    "st_lpips",
    "st_lpips_available",
]

#: A pixel counts as changed in :func:`region_perceptibility` when some channel moved
#: by at least this much: half an 8-bit level, so any change that survives saving.
CHANGED_LEVEL = 0.5 / 255

#: Networks of :func:`st_lpips` (both ship inside the ``stlpips-pytorch`` wheel).
ST_LPIPS_NETS = ("alex", "vgg")
#: Smallest height and width each network accepts (its reflection padding needs it).
ST_LPIPS_MIN_SIZE = {"alex": 21, "vgg": 18}

#: :func:`ciede2000` works in bands of about this many pixels (rows x width x B): the
#: formula keeps a few dozen pixel-sized temporaries.
_CIEDE_BAND_PIXELS = 1 << 20

_STLPIPS = "stlpips_pytorch"
#: The wheel's version, whose weight files and key layout were checked.
_STLPIPS_PIN = "stlpips-pytorch==0.0.2"
#: Modules ``stlpips_pytorch`` imports at top level without declaring them and never
#: calls on the path used here (debugging helpers): ``(module, name imported)``.
_UNDECLARED_IMPORTS = (("IPython", "embed"), ("torchsummary", "summary"))


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


def st_lpips_available() -> bool:
    """Whether the optional package ``stlpips-pytorch`` (for :func:`st_lpips`) is installed."""
    return importlib.util.find_spec(_STLPIPS) is not None


def _not_available(name: str) -> Callable[..., None]:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{name} is not installed (stlpips_pytorch imports it for debugging)")

    return unavailable


@contextlib.contextmanager
def _undeclared_imports_stubbed() -> Iterator[None]:
    """Let ``stlpips_pytorch`` import without IPython and torchsummary.

    It imports ``IPython.embed`` and ``torchsummary.summary`` at top level but does not
    declare them, and never calls them outside debugging helpers. Where one is missing,
    a stand-in module (whose function raises if ever called) is visible only for the
    duration of the import.
    """
    stubs: dict[str, types.ModuleType] = {}
    for name, attr in _UNDECLARED_IMPORTS:
        if name in sys.modules or importlib.util.find_spec(name) is not None:
            continue
        stub = types.ModuleType(name, f"stand-in for {name}, which is not installed")
        setattr(stub, attr, _not_available(f"{name}.{attr}"))
        stubs[name] = stub
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def _import_stlpips() -> types.ModuleType:
    if not st_lpips_available():
        raise ModuleNotFoundError(
            f"ST-LPIPS needs the optional package {_STLPIPS_PIN}: pip install "
            f"'{_STLPIPS_PIN}' (or the extra: pip install 'disrupt-deepfakes[perceptual]')",
            name=_STLPIPS,
        )
    with _undeclared_imports_stubbed(), contextlib.redirect_stdout(io.StringIO()):
        from stlpips_pytorch import stlpips  # type: ignore[import-not-found,import-untyped]
    return stlpips


def _check_weights_cover(model: nn.Module, state: dict[str, Tensor], path: Path) -> None:
    """Fail unless the weight file sets every parameter and buffer of ``model``.

    The package loads with ``strict=False`` because its state dict names each linear
    head twice (``lin0`` and ``lins.0`` are one module); so check by hand, on the
    de-duplicated names, that nothing is left at its random initialisation, that the
    file holds nothing the model lacks, and that the shapes agree.
    """
    own = model.state_dict()
    names = [n for n, _ in chain(model.named_parameters(), model.named_buffers())]
    missing = [n for n in names if n not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise RuntimeError(
            f"ST-LPIPS weights {path} do not match the network: missing {missing}, "
            f"unexpected {unexpected}, shape mismatches {mismatched}"
        )


@functools.cache
def _st_lpips_model(net: str, device: torch.device) -> nn.Module:
    """The ST-LPIPS network ``net`` with its bundled weights, frozen, on ``device``."""
    stlpips = _import_stlpips()
    # Only variant="shift_tolerant" builds its trunk from scratch; the default variant
    # asks torchvision for ImageNet weights over the network. pretrained=False: the
    # weights are loaded and checked below instead of by the package (strict=False).
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Setting up [LPIPS]..."
        model = stlpips.LPIPS(net=net, variant="shift_tolerant", pretrained=False, verbose=False)
    path = Path(str(stlpips.__file__)).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"
    if not path.is_file():
        raise FileNotFoundError(f"ST-LPIPS weights not found at {path} (expected {_STLPIPS_PIN})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    _check_weights_cover(model, state, path)
    model.load_state_dict(state, strict=False)  # every tensor covered, checked above
    return model.to(device).eval().requires_grad_(False)


def st_lpips(a: Tensor, b: Tensor, net: str = "alex") -> Tensor:
    """ST-LPIPS, the shift-tolerant learned perceptual distance (Ghildyal & Liu 2022).

    Uses the weights bundled in the optional package ``stlpips-pytorch==0.0.2``
    (variant ``shift_tolerant``; nothing is downloaded), loaded once per network and
    device and checked to cover every parameter. A one-pixel shift scores far lower
    than noise of the same MSE, unlike LPIPS. Not comparable with LPIPS numbers: report
    it as "ST-LPIPS". Differentiable in ``a`` and ``b``; the network is frozen.

    Args:
        a, b: ``(B,3,H,W)`` sRGB in ``[0,1]`` (rescaled to ``[-1,1]`` here), at least
            :data:`ST_LPIPS_MIN_SIZE` ``[net]`` pixels high and wide.
        net: ``"alex"`` (10 MB, fast) or ``"vgg"`` (59 MB, a few seconds to build).

    Returns:
        ``(B,)`` float32, non-negative, 0 for identical images; larger is more different.

    Raises:
        ModuleNotFoundError: ``stlpips-pytorch`` is not installed.
    """
    _check_pair(a, b)
    if a.shape[1] != 3:
        raise ValueError(f"expected RGB images (B,3,H,W), got {tuple(a.shape)}")
    if net not in ST_LPIPS_NETS:
        raise ValueError(f"net must be one of {ST_LPIPS_NETS}, got {net!r}")
    smallest = ST_LPIPS_MIN_SIZE[net]
    if min(a.shape[-2:]) < smallest:
        raise ValueError(
            f"ST-LPIPS ({net}) needs images at least {smallest}x{smallest}, got "
            f"{a.shape[-2]}x{a.shape[-1]}"
        )
    model = _st_lpips_model(net, a.device)
    d = model(a.float() * 2 - 1, b.float() * 2 - 1)
    return d.flatten()


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
