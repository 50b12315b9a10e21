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
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks import default_alpha, run_attack
from disrupt.core.faces import Box
from disrupt.core.objectives import AwayFromClean, Ensemble
from disrupt.core.transforms import DEFAULT_EOT_TRANSFORMS, ExpectationOverTransforms
from disrupt.errors import DisruptError
from disrupt.eval.evaluation import measure_disruption
from targets.base import Target
from targets.bundled import WEIGHTS_DIR
from targets.checkpoints import sha256_of

__all__ = [
    "BUNDLED_UNIVERSAL",
    "load_universal",
    "mean_ruiz_mse",
    "place_universal",
    "save_universal",
    "train_universal",
]

_CANVAS = 0.5

#: A universal perturbation trained against the four bundled models at 8/255
#: (``protect(universal="bundled")``, ``disrupt protect --fast``); see its card
#: ``universal_bundled_mid.md`` for how it was trained and what it achieves.
BUNDLED_UNIVERSAL = WEIGHTS_DIR / "universal_bundled_mid.safetensors"
BUNDLED_UNIVERSAL_SHA256 = "4489316495315821fa73c9667d7edcf7d1d440825535e363180d5bd945f00d1e"


class _UniversalObjective:
    """Stateful: call ``t`` scores the canvas offset on mini-batch ``t mod n_batches``."""

    def __init__(self, targets: Sequence[Target], images: Tensor, batch_size: int,
                 eot: bool, generator: torch.Generator) -> None:
        order = torch.randperm(images.shape[0], generator=generator)
        self.batches = [images[order[i : i + batch_size]]
                        for i in range(0, images.shape[0], batch_size)]
        self.targets = list(targets)
        self.eot = eot
        self.generator = generator
        self._objectives: dict[int, Callable[[Tensor], Tensor]] = {}
        self.calls = 0

    def _objective(self, k: int) -> Callable[[Tensor], Tensor]:
        if k not in self._objectives:
            batch = self.batches[k]
            inner = Ensemble([AwayFromClean(t, batch) for t in self.targets])
            self._objectives[k] = (
                ExpectationOverTransforms(inner, DEFAULT_EOT_TRANSFORMS, generator=self.generator)
                if self.eot else inner
            )
        return self._objectives[k]

    def __call__(self, canvas: Tensor) -> Tensor:
        k = self.calls % len(self.batches)
        self.calls += 1
        batch = self.batches[k]
        x_adv = (batch + (canvas - _CANVAS)).clamp(0.0, 1.0)
        return self._objective(k)(x_adv).mean().reshape(1)


def _as_batch(images: Tensor | Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """Images ``(N, 3, h, w)`` or a list of ``(3, h, w)`` / ``(1, 3, h, w)`` -> ``(N, 3, S, S)``."""
    items = [images] if isinstance(images, Tensor) else list(images)
    out = []
    for item in items:
        t = item if item.ndim == 4 else item.unsqueeze(0)
        if t.ndim != 4 or t.shape[1] != 3:
            raise ValueError(f"images must be (N,3,H,W) or (3,H,W), got {tuple(item.shape)}")
        if tuple(t.shape[-2:]) != size:
            t = F.interpolate(t.float(), size=size, mode="bilinear", align_corners=False,
                              antialias=True)
        out.append(t.float().clamp(0.0, 1.0))
    return torch.cat(out)


def _default_size(targets: Sequence[Target]) -> int:
    sides = [max(t.input_size) for t in targets if t.input_size is not None]
    return max(sides) if sides else 128


def train_universal(
    targets: Sequence[Target],
    images: Tensor | Sequence[Tensor],
    *,
    eps: float = 8 / 255,
    steps: int = 200,
    size: int | None = None,
    alpha: float | None = None,
    batch_size: int = 16,
    eot: bool = True,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Train one perturbation that disrupts every target on every training face.

    Args:
        targets: the generators to disrupt together (``Ensemble`` of
            :class:`~disrupt.core.objectives.AwayFromClean`, all conditions each).
        images: face crops ``(N, 3, h, w)`` (or a list of ``(3, h, w)``) in ``[0, 1]``,
            cropped as a manipulator would; resized to ``size``.
        eps: L-inf budget in ``[0, 1]`` units (``<= 0.5``).
        steps: sign-gradient steps; each uses one mini-batch, cycling through them.
        size: side ``S`` of the perturbation; default the largest target input side.
        alpha: step size; default ``default_alpha(eps, steps)`` (``2.5 eps / steps``)
            but at least ``eps / 50``.
        batch_size: faces per step.
        eot: average over :data:`~disrupt.core.transforms.DEFAULT_EOT_TRANSFORMS` (one draw a step).
        seed: seeds the batch order, the random start and the EOT draws.
        progress: ``progress(step, steps)`` after each step.

    Returns:
        ``(3, S, S)`` float32 perturbation with values in ``[-eps, eps]``.
    """
    if not targets:
        raise ValueError("train_universal needs at least one target")
    if not (math.isfinite(eps) and 0 < eps <= _CANVAS):
        raise ValueError(f"eps must be in (0, 0.5], got {eps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    side = size or _default_size(targets)
    batch = _as_batch(images, (side, side))
    generator = torch.Generator().manual_seed(seed)
    objective = _UniversalObjective(targets, batch, batch_size, eot, generator)
    canvas = torch.full((1, 3, side, side), _CANVAS, device=batch.device)
    step_size = alpha if alpha is not None else max(default_alpha(eps, steps), eps / 50)

    def on_step(step: int, _scores: Tensor) -> None:
        if progress is not None:
            progress(step + 1, steps)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = run_attack(canvas, objective, eps=eps, alpha=step_size, steps=steps,
                         random_start=True, generator=generator, callback=on_step)
    return (out - _CANVAS)[0].clamp(-eps, eps)


def mean_ruiz_mse(targets: Sequence[Target], images: Tensor, delta: Tensor) -> float:
    """Mean Ruiz MSE (``[-1, 1]`` scale) over images, targets and conditions when
    ``delta`` ``(3, S, S)`` is added to ``images`` ``(N, 3, S, S)`` in ``[0, 1]``."""
    x_adv = (images + delta.unsqueeze(0)).clamp(0.0, 1.0)
    rows = measure_disruption(targets, images, x_adv)
    values = [d.ruiz_mse for row in rows for d in row]
    return sum(values) / len(values)


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


def load_face_folder(folder: str | Path, size: int, *, limit: int | None = None,
                     crop: float = 1.0) -> Tensor:
    """Face crops from the images in ``folder`` (sorted, first ``limit``): the central
    square of side ``crop`` times the shorter side, resized to ``size``.

    ``crop=1`` on CelebA's aligned 89x109 images is StarGAN's CenterCrop; on
    250x250 LFW images ``crop=0.464`` is the face-swap model's central 116 pixels.

    Returns:
        ``(N, 3, size, size)`` float32 in ``[0, 1]``.
    """
    from disrupt.imaging import load_image

    suffixes = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in suffixes)[:limit]
    if not paths:
        raise DisruptError(f"{folder}: no images found")
    out = []
    for path in paths:
        x = load_image(path).rgb
        h, w = x.shape[-2:]
        side = max(1, round(min(h, w) * crop))
        top, left = (h - side) // 2, (w - side) // 2
        out.append(F.interpolate(x[..., top : top + side, left : left + side], size=(size, size),
                                 mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out).clamp(0.0, 1.0)


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse
    from fractions import Fraction

    from targets import load_target

    parser = argparse.ArgumentParser(
        description="Train a universal perturbation (CMUA-style) against several targets.")
    parser.add_argument("--target", action="append", required=True, help="repeatable")
    parser.add_argument("--images", required=True, help="folder of face crops")
    parser.add_argument("--out", required=True, help="output .safetensors file")
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=2000, help="images used")
    parser.add_argument("--crop", type=float, default=1.0, help="central square, x shorter side")
    parser.add_argument("--no-eot", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    eps = float(Fraction(args.eps))
    targets = [load_target(name) for name in args.target]
    for t in targets:
        if isinstance(t, torch.nn.Module):
            t.to(args.device)
    side = args.size or _default_size(targets)
    images = load_face_folder(args.images, side, limit=args.limit, crop=args.crop).to(args.device)
    n_held = min(64, images.shape[0] // 10)
    train, held_out = (images[:-n_held], images[-n_held:]) if n_held else (images, images)
    delta = train_universal(targets, train, eps=eps, steps=args.steps, size=side,
                            batch_size=args.batch_size, eot=not args.no_eot, seed=args.seed)
    noise = (torch.randint(0, 2, delta.shape, generator=torch.Generator().manual_seed(args.seed))
             * 2 - 1).to(delta) * eps
    save_universal(args.out, delta, eps=eps, targets=args.target)
    print(f"saved {args.out}: (3, {side}, {side}), eps {eps * 255:.1f}/255, "
          f"{args.steps} steps on {train.shape[0]} images")
    seen = " (also trained on: too few images to hold any out)" if not n_held else " (held out)"
    print(f"mean Ruiz MSE on the last {held_out.shape[0]} images{seen}: "
          f"universal {mean_ruiz_mse(targets, held_out, delta):.4f}, "
          f"random sign noise {mean_ruiz_mse(targets, held_out, noise):.4f}")


if __name__ == "__main__":
    _main()
