"""The amortized protector: a small network that maps a face crop to its perturbation
in one forward pass (``protect(..., protector="bundled")``, ``disrupt protect --fast``).

After TAFIM (Aneja et al., "TAFIM: Targeted Adversarial Attacks against Facial Image
Manipulations", ECCV 2022) and the generator-based defences that followed it: instead
of running an attack on every photo, a feed-forward network is trained once, against
the bundled models, to output a perturbation that disrupts them on any face. Here it
is a compact U-Net (:class:`PerturbationNet`) on ``64 x 64`` crops plus a learned
image-independent pattern (initialised from the bundled universal perturbation, so
training starts from CMUA's answer and learns what each face adds to it).

Perceptibility is equal to the iterative attack's by construction: the network's
raw output goes through the same shaping (:func:`fit_to_budget`): the high-pass that
removes colour casts and blotches, the preset's per-pixel texture caps, and the PSNR
floor's L2 radius, filled; then 8-bit rounding within the budget, as for the attack.

Files are safetensors (float16 weights, ``format``/``width``/``size`` in the
metadata) loaded with strict key checks: no pickle is ever read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from disrupt.core.crops import crop_resize
from disrupt.core.faces import Box
from disrupt.core.masking import high_pass
from disrupt.errors import DisruptError
from targets.bundled import WEIGHTS_DIR
from targets.checkpoints import sha256_of

__all__ = [
    "BUNDLED_PROTECTOR",
    "PROTECTOR_FORMAT",
    "PerturbationNet",
    "fit_to_budget",
    "load_protector",
    "protector_raw",
    "save_protector",
]

#: The protector trained against the four bundled models at the ``mid`` budget; its
#: card ``protector_bundled_mid.md`` says how it was trained and what it achieves.
BUNDLED_PROTECTOR = WEIGHTS_DIR / "protector_bundled_mid.safetensors"
BUNDLED_PROTECTOR_SHA256 = "20fdafa004345eb5a1b2ab8208c7da4c60dabb0bab2538f3852e477a1da9a879"
PROTECTOR_FORMAT = "disrupt-protector-v1"
#: How many scale-and-clamp rounds :func:`fit_to_budget` takes to fill the L2 radius.
FIT_ROUNDS = 4


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1),
                         nn.LeakyReLU(0.2))


class PerturbationNet(nn.Module):
    """Face crop -> raw perturbation: a three-level U-Net plus a learned pattern.

    The raw output has no scale of its own: :func:`fit_to_budget` sets it. ``pattern``
    is image-independent (a universal perturbation); the U-Net's last layer starts at
    zero, so an untrained net outputs just the pattern.

    Args:
        width: channels at full resolution (then ``2 * width`` and ``3 * width``).
        size: the side of the crops it sees (the bundled models' 64).

    Shape:
        ``(B, 3, size, size)`` in ``[0, 1]`` -> ``(B, 3, size, size)`` raw values.
    """

    def __init__(self, width: int = 32, size: int = 64) -> None:
        super().__init__()
        if width < 1 or size < 8 or size % 4:
            raise ValueError(f"bad PerturbationNet: width={width}, size={size} (a multiple of 4)")
        self.width, self.size = width, size
        w = width
        self.enc1 = nn.Sequential(_conv(3, w), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w), _conv(3 * w, 3 * w))
        self.dec2 = _conv(5 * w, 2 * w)
        self.dec1 = _conv(3 * w, w)
        self.out = nn.Conv2d(w, 3, 1)
        nn.init.zeros_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)
        self.pattern = nn.Parameter(torch.zeros(3, size, size))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.size, self.size):
            raise ValueError(f"PerturbationNet takes (B, 3, {self.size}, {self.size}), "
                             f"got {tuple(x.shape)}")
        e1 = self.enc1(x * 2 - 1)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        up = F.interpolate(e3, scale_factor=2.0, mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([up, e2], dim=1))
        up = F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False)
        d1 = self.dec1(torch.cat([up, e1], dim=1))
        return self.out(d1) + self.pattern


def protector_raw(net: PerturbationNet, x: Tensor, boxes: Sequence[Box]) -> Tensor:
    """The network's raw perturbation for each box of ``x``, at the photo's resolution.

    Each box is cut out and resized to the net's input (as a manipulator resizes a
    face crop for a 64 px model), and the output is resized back into the box
    (bilinear, antialiased). Later boxes overwrite earlier ones where they overlap.

    Shape:
        ``x``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, H, W)`` raw values, zero
        outside the boxes.
    """
    side = (net.size, net.size)
    out = torch.zeros_like(x)
    for b in boxes:
        raw = net(crop_resize(x, b, side))
        if (b.height, b.width) != side:
            raw = F.interpolate(raw, size=(b.height, b.width), mode="bilinear",
                                align_corners=False, antialias=True)
        out[..., b.top : b.bottom, b.left : b.right] = raw
    return out


def fit_to_budget(raw: Tensor, radius: float | Tensor, *, caps: float | Tensor | None = None,
                  sigma: float | None = None, mask: Tensor | None = None) -> Tensor:
    """Shape a raw perturbation the way the iterative attack's result is shaped, and
    fill the budget: keep its fine grain (``high_pass(raw, sigma)``), zero it where
    ``mask`` is 0 (scaled where grey), then alternately scale it to the L2 ``radius``
    and clamp each pixel to its cap (:data:`FIT_ROUNDS` rounds, ending on the clamp,
    so both bounds hold). Differentiable.

    Args:
        raw: ``(B, 3, H, W)`` any scale.
        radius: the L2 radius on the ``[0, 1]`` scale, a number or ``(B, 1, 1, 1)``.
        caps: per-pixel cap, a number or ``(B or 1, 1, H, W)``
            (:func:`~disrupt.core.masking.texture_caps`); ``None``: no cap.
        sigma: the high-pass sigma in pixels; ``None``: none.
        mask: ``(1 or B, 1, H, W)`` in ``[0, 1]``.

    Returns:
        ``(B, 3, H, W)`` with ``||delta||_2 <= radius`` per image and ``|delta| <= caps``.
    """
    delta = high_pass(raw, sigma) if sigma is not None else raw
    if mask is not None:
        delta = delta * mask
    for _ in range(FIT_ROUNDS):
        norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta * (radius / norm)
        if caps is None:
            break
        delta = torch.minimum(torch.maximum(delta, -caps), caps) if isinstance(caps, Tensor) \
            else delta.clamp(-caps, caps)
    return delta


def save_protector(path: str | Path, net: PerturbationNet, *, targets: Sequence[str] = ()) -> Path:
    """Write ``net`` as float16 safetensors with its format, width, size and targets."""
    import json

    from safetensors.torch import save_file

    out = Path(path)
    tensors = {k: v.detach().to(torch.float16).contiguous().cpu()
               for k, v in net.state_dict().items()}
    save_file(tensors, str(out), metadata={"format": PROTECTOR_FORMAT, "width": str(net.width),
                                           "size": str(net.size),
                                           "targets": json.dumps(list(targets))})
    return out


def load_protector(source: str | Path | PerturbationNet) -> PerturbationNet:
    """A protector in eval mode with frozen parameters, from a safetensors file (or a
    ready net); the string ``"bundled"`` means :data:`BUNDLED_PROTECTOR`, whose sha256
    is checked.

    Raises:
        DisruptError: ``"<file>: ..."`` when the file cannot be read, is not a
            protector, or has missing, unexpected, misshapen or non-finite weights.
    """
    if isinstance(source, PerturbationNet):
        return _frozen(source)
    path = BUNDLED_PROTECTOR if isinstance(source, str) and source == "bundled" else Path(source)
    if source == "bundled" and BUNDLED_PROTECTOR_SHA256 and (
            not path.is_file() or sha256_of(path) != BUNDLED_PROTECTOR_SHA256):
        raise DisruptError(f"{path}: sha256 does not match the bundled protector (file "
                           "missing, damaged or replaced)")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    except (OSError, SafetensorError) as exc:
        raise DisruptError(f"{path}: cannot read a protector ({exc})") from None
    if meta.get("format") != PROTECTOR_FORMAT:
        raise DisruptError(f"{path}: not a protector file (format "
                           f"{meta.get('format')!r}, expected {PROTECTOR_FORMAT!r})")
    try:
        net = PerturbationNet(width=int(meta["width"]), size=int(meta["size"]))
    except (KeyError, ValueError) as exc:
        raise DisruptError(f"{path}: bad protector metadata ({exc})") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise DisruptError(f"{path}: protector weights do not match the network (missing "
                           f"{missing or 'none'}, unexpected {unexpected or 'none'})")
    for key, value in tensors.items():
        if value.shape != expected[key].shape or not bool(torch.isfinite(value).all()):
            raise DisruptError(f"{path}: weight {key!r} is misshapen {tuple(value.shape)} "
                               f"(expected {tuple(expected[key].shape)}) or not finite")
    net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return _frozen(net)


def _frozen(net: PerturbationNet) -> PerturbationNet:
    net.eval()
    net.requires_grad_(False)
    return net
