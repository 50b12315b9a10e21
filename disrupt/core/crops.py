"""Attacking and measuring through crops: cut a box out of a photo and resize it to a
model's input, differentiably.

:func:`crop_resize` is the op; :class:`CropTarget` runs a target on one crop of the
photo (what a manipulator feeds the model); :class:`CropsObjective` scores an
objective on several crop boxes at once. Boxes come from :mod:`disrupt.core.faces`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from attacks import Objective
from disrupt.core.faces import DEFAULT_CROP_SIZE, Box
from targets.base import Condition, Target


def crop_resize(x: Tensor, box: Box, size: tuple[int, int] | None) -> Tensor:
    """Cut ``box`` out of ``x`` and resize it to ``size``, differentiably.

    The crop is integer indexing (a view: its gradient lands in exactly the box's
    pixels of ``x``); the resize is bilinear and antialiased, as
    :class:`~targets.GeneratorTarget` resizes, so a large crop is averaged, not
    subsampled. ``size=None`` keeps the crop's own size.

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B, 3, h, w)`` in ``[0, 1]``, ``(h, w) = size``.
    """
    h, w = x.shape[-2:]
    if box.left < 0 or box.top < 0 or box.right > w or box.bottom > h:
        raise ValueError(f"{box} is not inside a {w}x{h} image")
    crop = x[..., box.top : box.bottom, box.left : box.right]
    if size is None or tuple(crop.shape[-2:]) == tuple(size):
        return crop
    # Interpolation weights can overshoot [0, 1] by float rounding; keep the convention.
    return F.interpolate(crop, size=tuple(size), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0.0, 1.0)


class CropTarget:
    """A :class:`~targets.Target` that first crops a box out of the photo.

    ``CropTarget(target, box)(x, c) == target(crop_resize(x, box, size), c)``, with
    ``size`` the target's ``input_size`` (so the target's own resize is a no-op).
    Every objective and :func:`~disrupt.eval.evaluation.measure_disruption` work on it
    unchanged, in the full photo's pixels. It reports ``batch_independent = False``
    so that they call it once per condition rather than on the photo repeated once
    per condition.

    Args:
        target: the generator as the manipulator runs it.
        box: the crop, in the photo's pixels.
        size: the size the crop is resized to; default the target's ``input_size``
            (:data:`DEFAULT_CROP_SIZE` squared when it has none).
        name: report name; default ``"<target>@<left>,<top>,<right>,<bottom>"``.

    Shape:
        ``(B, 3, H, W)`` in ``[0, 1]`` (the whole photo) -> the target's output.
    """

    def __init__(self, target: Target, box: Box, size: tuple[int, int] | None = None,
                 name: str | None = None) -> None:
        self.target = target
        self.box = box
        self.size = size or target.input_size or (DEFAULT_CROP_SIZE, DEFAULT_CROP_SIZE)
        self.name = name or f"{target.name}@{','.join(str(v) for v in box.as_tuple())}"
        self.input_size: tuple[int, int] | None = None
        self.conditions: Sequence[Condition] = target.conditions
        # Declared batch-dependent on purpose: callers then run one condition per call
        # on the photo instead of repeating the whole photo once per condition (a
        # K x 12 MP batch); the crop is small, so the extra calls cost little.
        self.batch_independent = False

    def __call__(self, x: Tensor, condition: Tensor | None) -> Tensor:
        return self.target(crop_resize(x, self.box, self.size), condition)


class CropsObjective:
    """Score an objective on several crops of the photo at once.

    The clean crops of ``x`` (``K`` boxes, each resized to ``size``) are stacked
    box-major into a batch of ``K * B`` and handed to ``make_objective``, which builds
    the inner objective on them (e.g. ``lambda xc: AwayFromClean(target, xc)``, or an
    :class:`~disrupt.core.transforms.ExpectationOverTransforms` of it, so transforms run on the
    small crops, not on the full photo). A call crops ``x_adv`` the same way and
    returns the inner scores averaged over the boxes. No ``K x full image`` batch is
    ever built: each crop is cut from ``x_adv`` before resizing.

    With ``batched=False`` (targets whose outputs depend on the batch, like pix2pix in
    train mode) each box gets its own inner objective and its own call.

    Args:
        make_objective: ``make_objective(clean_crops) -> objective``.
        x: the clean photo ``(B, 3, H, W)`` in ``[0, 1]``.
        boxes: crop boxes in ``x``'s pixels (one box covering ``x`` = the whole photo).
        size: the size every crop is resized to (``None``: crops' own size; then the
            boxes must all have one size when ``batched``).
        batched: stack the crops into one batch.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> ``(B,)``.
    """

    def __init__(
        self,
        make_objective: Callable[[Tensor], Objective],
        x: Tensor,
        boxes: Sequence[Box],
        size: tuple[int, int] | None,
        *,
        batched: bool = True,
    ) -> None:
        self.boxes = tuple(boxes)
        if not self.boxes:
            raise ValueError("CropsObjective needs at least one box")
        self.size = size
        self.batched = batched
        clean = x.detach()
        if batched:
            self.parts: list[Objective] = [make_objective(self.crops(clean))]
        else:
            self.parts = [make_objective(crop_resize(clean, b, size)) for b in self.boxes]

    def crops(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W)`` -> ``(K * B, 3, h, w)``, box-major."""
        return torch.cat([crop_resize(x, b, self.size) for b in self.boxes])

    def __call__(self, x_adv: Tensor) -> Tensor:
        b = x_adv.shape[0]
        if self.batched:
            return self.parts[0](self.crops(x_adv)).view(len(self.boxes), b).mean(dim=0)
        scores = [part(crop_resize(x_adv, box, self.size))
                  for part, box in zip(self.parts, self.boxes, strict=True)]
        return torch.stack(scores).mean(dim=0)
