"""Universal perturbations: one pattern, trained once, that disrupts many faces and models.

After CMUA-Watermark (Huang et al., "CMUA-Watermark: A Cross-Model Universal
Adversarial Watermark for Combating Deepfakes", AAAI 2022): a single perturbation
``u`` of shape ``(3, S, S)`` with ``|u| <= eps`` is trained on a set of face crops
against several generators at once, maximising the mean of Ruiz et al.'s
distance ``||G(x + u) - G(x)||^2`` over images, targets and conditions. At
protection time it is resized to each face crop (or to the whole photo when no face
is found) and used as the attack's starting point; a few refinement steps then
specialise it to the photo (``protect(..., universal=PATH, steps=5)``), which is far
cheaper than a full attack.

Training reuses the one attack loop (:func:`attacks.run_attack`) on a constant
``0.5`` canvas whose offset from ``0.5`` *is* ``u``: each step's objective adds that
offset to the next mini-batch of faces. CMUA's own step-size search (TPE) and
model-specific weighting are not reproduced: plain sign steps, equal weights.

Files are ``safetensors`` (tensor ``"perturbation"``, float32 ``(3, S, S)``, with
``eps``, ``size`` and ``targets`` in the metadata): no pickle is ever loaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from disrupt.core.faces import Box
from disrupt.errors import DisruptError
from targets.bundled import WEIGHTS_DIR
from targets.checkpoints import sha256_of

__all__ = [
    "BUNDLED_UNIVERSAL",
    "load_universal",
    "place_universal",
    "save_universal",
]


#: A universal perturbation trained against the four bundled models at 8/255
#: (``protect(universal="bundled")``, ``disrupt protect --fast``); see its card
#: ``universal_bundled_mid.md`` for how it was trained and what it achieves.
BUNDLED_UNIVERSAL = WEIGHTS_DIR / "universal_bundled_mid.safetensors"
BUNDLED_UNIVERSAL_SHA256 = "0ccb8b8939dfe1c4db1c196784c8f117841de6e25840884228a7f7a89e2c2679"


def save_universal(path: str | Path, delta: Tensor, *, eps: float,
                   targets: Sequence[str] = ()) -> Path:
    """Write ``delta`` ``(3, S, S)`` as safetensors with its budget and targets."""
    from safetensors.torch import save_file

    if delta.ndim != 3 or delta.shape[0] != 3:
        raise ValueError(f"a universal perturbation is (3, S, S), got {tuple(delta.shape)}")
    out = Path(path)
    save_file({"perturbation": delta.detach().float().contiguous().cpu()}, str(out),
              metadata={"eps": repr(float(eps)), "size": str(delta.shape[-1]),
                        "targets": json.dumps(list(targets))})
    return out


def load_universal(source: str | Path | Tensor) -> Tensor:
    """A universal perturbation ``(3, S, S)`` from a safetensors file or a tensor;
    the string ``"bundled"`` means :data:`BUNDLED_UNIVERSAL`.

    Raises:
        DisruptError: ``"<file>: ..."`` when the file cannot be read or holds no
            ``(3, S, S)`` finite ``"perturbation"`` tensor.
    """
    if isinstance(source, str) and source == "bundled":
        source = BUNDLED_UNIVERSAL
        if sha256_of(source) != BUNDLED_UNIVERSAL_SHA256:
            raise DisruptError(f"{source}: sha256 does not match the bundled universal "
                               "perturbation (file damaged or replaced)")
    if isinstance(source, Tensor):
        delta = source.detach().float()
        label = "universal tensor"
    else:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        label = str(source)
        try:
            tensors = load_file(str(source))
        except (OSError, SafetensorError) as exc:
            raise DisruptError(f"{label}: cannot read a universal perturbation ({exc})") from None
        if "perturbation" not in tensors:
            raise DisruptError(f"{label}: no 'perturbation' tensor in the file")
        delta = tensors["perturbation"].float()
    if delta.ndim == 4 and delta.shape[0] == 1:
        delta = delta[0]
    if (delta.ndim != 3 or delta.shape[0] != 3 or delta.shape[1] < 1 or delta.shape[2] < 1
            or not bool(torch.isfinite(delta).all())):
        raise DisruptError(f"{label}: expected a finite (3, S, S) perturbation, "
                           f"got shape {tuple(delta.shape)}")
    return delta


def place_universal(delta: Tensor, boxes: Sequence[Box], shape: Sequence[int]) -> Tensor:
    """Resize ``delta`` ``(3, S, S)`` into each box of an image of ``shape`` ``(1, 3, H, W)``.

    Returns a ``(1, 3, H, W)`` perturbation, zero outside the boxes (later boxes
    overwrite earlier ones where they overlap). Resizing is bilinear: a manipulator's
    antialiased resize of the box back to ``S`` recovers ``delta`` closely.
    """
    out = torch.zeros(tuple(shape), dtype=delta.dtype, device=delta.device)
    for b in boxes:
        out[..., b.top : b.bottom, b.left : b.right] = F.interpolate(
            delta.unsqueeze(0), size=(b.height, b.width), mode="bilinear", align_corners=False,
            antialias=True,
        )
    return out

