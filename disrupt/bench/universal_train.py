"""Training a universal perturbation (CMUA-Watermark style): one ``(3, S, S)`` pattern
that disrupts the targets on many faces, trained by projected gradient ascent over
batches of face crops. Loading and placing one is :mod:`disrupt.core.universal`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks import default_alpha, run_attack
from disrupt.core.eot import ExpectationOverTransforms
from disrupt.core.objectives import AwayFromClean, Ensemble
from disrupt.core.transforms import DEFAULT_EOT_TRANSFORMS
from disrupt.errors import DisruptError
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging.load import IMAGE_SUFFIXES
from disrupt.imaging.pixels import center_box
from targets.base import Target

_CANVAS = 0.5



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

    paths = sorted(p for p in Path(folder).iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not paths:
        raise DisruptError(f"{folder}: no images found")
    out = []
    for path in paths:
        x = load_image(path).rgb
        h, w = x.shape[-2:]
        left, top, right, bottom = center_box(w, h, max(1, round(min(h, w) * crop)))
        out.append(F.interpolate(x[..., top:bottom, left:right], size=(size, size),
                                 mode="bilinear", align_corners=False, antialias=True))
    return torch.cat(out).clamp(0.0, 1.0)
