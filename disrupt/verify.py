"""Check a protected photo: run each target on the original and on the protected copy.

:func:`verify` takes any two images of the same scene (the protected one may have
been re-saved as JPEG, or resized by a few pixels), measures how far every target's
output on the protected image is from its output on the original, and gives a plain
verdict per target with Ruiz et al.'s threshold (MSE > 0.05 between the outputs on
the ``[-1, 1]`` scale). :meth:`VerifyResult.picture` draws the evidence: one row per
(target, condition), columns original, protected, edit of original, edit of protected.

It judges as :func:`disrupt.api.protect` measures: faces are looked for on the
*protected* image (what a manipulator has), with protect's detector and rule
(:func:`~disrupt.core.pipeline.plan_protection`), and every target runs through each
face's canonical crop, the same box cut from both images
(:func:`~disrupt.core.pipeline.evaluation_targets`: rows ``"<target>@face<i>"``), or
on the whole photo when there is no face (rows named by the target).

Images are float ``(1, 3, H, W)`` in ``[0, 1]`` throughout; nothing here prints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from disrupt.api import TargetSpec, resolve_targets
from disrupt.core.crops import CropTarget
from disrupt.core.faces import Box
from disrupt.core.pipeline import evaluation_targets, plan_protection
from disrupt.core.seeding import move_to, resolve_device, seeded
from disrupt.errors import DisruptError
from disrupt.eval.evaluation import Disruption, measure_disruption, target_outputs
from disrupt.eval.figures import compose_grid
from disrupt.eval.metrics import RUIZ_THRESHOLD, perceptibility
from disrupt.files import write_atomically
from disrupt.imaging import ImageInput, load_image
from targets.base import Target

log = logging.getLogger(__name__)

__all__ = ["COLUMNS", "TargetVerdict", "VerifyResult", "verify"]

COLUMNS: tuple[str, ...] = ("original", "protected", "edit of original", "edit of protected")
ASPECT_TOLERANCE = 0.05  # relative aspect-ratio difference that earns a "same scene?" note


@dataclass(frozen=True)
class TargetVerdict:
    """The plain answer for one target (with faces, one target on one face's crop:
    ``target`` is then ``"<target>@face<i>"``).

    ``disrupted`` is true when **every** condition's output is disrupted
    (``ruiz_mse > threshold``); ``verdict`` says ``"disrupted"``,
    ``"partly disrupted (k/K conditions)"`` or ``"not disrupted"``.
    """

    target: str
    disrupted: bool
    disrupted_conditions: int
    conditions: int
    mean_ruiz_mse: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _verdict(target: str, rows: Sequence[Disruption]) -> TargetVerdict:
    hit = sum(r.disrupted for r in rows)
    total = len(rows)
    if hit == total:
        text = "disrupted"
    elif hit == 0:
        text = "not disrupted"
    else:
        text = f"partly disrupted ({hit}/{total} conditions)"
    mean = sum(r.ruiz_mse for r in rows) / max(1, total)
    return TargetVerdict(target, hit == total, hit, total, mean, text)


@dataclass
class VerifyResult:
    """What :func:`verify` measured.

    ``original`` and ``protected`` are ``(1, 3, H, W)`` in ``[0, 1]`` at the original's
    size (the protected one resized when needed, see ``notes``). ``outputs[name]`` is
    ``(clean, protected)``, each ``(K, 1, 3, h, w)`` in ``[0, 1]``: the target's
    edit of each image for each of its ``K`` conditions; with faces, its edit of the
    face's canonical crop.

    The geometry follows :func:`disrupt.api.protect`: ``face_status`` is ``"used"``
    (faces found on the protected image; ``outputs``, ``disruption`` and ``verdicts``
    are keyed ``"<target>@face<i>"``), ``"none-found"``, ``"off"`` (``faces=False``) or
    ``"small-image"`` (``faces=None`` on a photo under twice the targets' input size);
    without faces the keys are the target names. ``faces`` are the detected boxes and
    ``crops`` each face's canonical crop, ``(left, top, right, bottom)`` in the
    original's pixels; ``regions[name]`` is the box row ``name`` was measured on (the
    whole photo without faces).
    """

    original: Tensor
    protected: Tensor
    original_path: Path | None
    protected_path: Path | None
    protected_size: tuple[int, int]
    resized: bool
    perceptibility: dict[str, float]
    disruption: list[Disruption]
    verdicts: list[TargetVerdict]
    outputs: dict[str, tuple[Tensor, Tensor]]
    conditions: dict[str, list[str]]
    threshold: float = RUIZ_THRESHOLD
    notes: list[str] = field(default_factory=list)
    picture_path: Path | None = None
    face_status: str = "off"
    #: The face detector used (``None`` when none ran).
    detector: str | None = None
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)
    crops: list[tuple[int, int, int, int]] = field(default_factory=list)
    regions: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the original."""
        return int(self.original.shape[-1]), int(self.original.shape[-2])

    @property
    def rows(self) -> int:
        """Rows of :meth:`picture`: one per (target, condition)."""
        return len(self.disruption)

    def picture(self, cell: int = 128) -> Image.Image:
        """The labelled grid: rows (target, condition); columns :data:`COLUMNS`.

        With faces, a row's first two cells show the face crop the target was run on.
        """
        images: list[list[Tensor | None]] = []
        labels: list[str] = []
        by_pair = {(d.target, d.condition): d for d in self.disruption}
        for name, (clean, adv) in self.outputs.items():
            left, top, right, bottom = self.regions.get(name, (0, 0, *self.size))
            shown = [img[0, :, top:bottom, left:right] for img in (self.original, self.protected)]
            for k, cond in enumerate(self.conditions[name]):
                d = by_pair[(name, cond)]
                mark = "DISRUPTED" if d.disrupted else "not disrupted"
                labels.append(f"{name}\n{cond}\nRuiz MSE {d.ruiz_mse:.4f}\n{mark}")
                images.append([*shown, clean[k, 0], adv[k, 0]])
        title = f"threshold: Ruiz MSE > {self.threshold:g}"
        return compose_grid(images, row_labels=labels, col_labels=COLUMNS, cell=cell, title=title)

    def save_picture(self, path: str | os.PathLike[str], cell: int = 128, *,
                     overwrite: bool = False) -> Path:
        """Write :meth:`picture` as PNG atomically; returns the path.

        Never writes over either image that was compared; an existing file is
        replaced only with ``overwrite``.
        """
        out = Path(path)
        check_picture_path(out, self.original_path, self.protected_path, overwrite=overwrite)
        picture = self.picture(cell)
        try:
            write_atomically(out, lambda f: picture.save(f, format="PNG"))
        except OSError as exc:
            raise DisruptError(f"{out}: could not write the picture ({exc})") from exc
        self.picture_path = out
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no tensors)."""
        return {
            "original": str(self.original_path) if self.original_path else None,
            "protected": str(self.protected_path) if self.protected_path else None,
            "size": list(self.size),
            "protected_size": list(self.protected_size),
            "resized": self.resized,
            "face_status": self.face_status,
            "detector": self.detector,
            "faces": [list(b) for b in self.faces],
            "crops": [list(b) for b in self.crops],
            "threshold": self.threshold,
            "metric": "ruiz_mse: MSE between G(protected) and G(original) on [-1,1]",
            "perceptibility": self.perceptibility,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "disruption": [d.to_dict() for d in self.disruption],
            "picture": str(self.picture_path) if self.picture_path else None,
            "notes": list(self.notes),
        }


def check_picture_path(out: Path, *inputs: Path | None, overwrite: bool = False) -> None:
    """Refuse a picture path that is not ``.png``, whose folder is missing, that is one
    of ``inputs`` (always, even with ``overwrite``), or that exists without
    ``overwrite``. Raises :class:`DisruptError` with a one-line message."""
    if out.suffix.lower() != ".png":
        raise DisruptError(f"{out}: the picture is written as PNG; use a .png name")
    if not out.parent.is_dir():
        raise DisruptError(f"{out.parent}: output folder does not exist")
    for given in inputs:
        if given is not None and (out.resolve() == given.resolve()
                                  or (out.exists() and os.path.samefile(out, given))):
            raise DisruptError(f"{out}: refusing to write the picture over an input image")
    if out.is_dir():
        raise DisruptError(f"{out}: is a folder")
    if out.exists() and not overwrite:
        raise DisruptError(f"{out}: exists; pass --overwrite (overwrite=True) to replace it")


def _match_size(protected: Tensor, original: Tensor) -> Tensor:
    """Resize ``protected`` ``(1,3,h,w)`` to ``original``'s size (bicubic, antialiased)."""
    size = tuple(original.shape[-2:])
    return F.interpolate(protected, size=size, mode="bicubic", align_corners=False,
                         antialias=True).clamp(0.0, 1.0)


def verify(
    original: ImageInput,
    protected: ImageInput,
    *,
    targets: Sequence[TargetSpec] | None = None,
    weights: Mapping[str, str | Path] | None = None,
    threshold: float = RUIZ_THRESHOLD,
    faces: bool | None = None,
    detector: str = "haar",
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> VerifyResult:
    """Measure how much ``protected`` disrupts each target compared with ``original``.

    Args:
        original, protected: anything :func:`~disrupt.imaging.load_image` accepts. When
            their sizes differ (a re-save, a crop by a pixel), ``protected`` is resized
            to ``original``'s size and a note says so.
        targets: names or targets; ``None`` for the bundled set.
        weights: checkpoint per target name, where a target needs one.
        threshold: Ruiz et al.'s success threshold on the ``[-1, 1]`` output MSE.
        faces: as :func:`disrupt.api.protect`'s: ``True`` look for faces, ``False``
            measure on the whole photo, ``None`` (default) look when the photo is at
            least twice the targets' input size. Faces are looked for on the
            protected image (after any resize to the original's size); each face's
            canonical crop box is then cut from both images, as protect measures.
        detector: the face detector, as :func:`disrupt.api.protect`'s (use the one
            the photo was protected with).
        seed: seeds stochastic generators identically for both images.
        device: where the targets run (``"auto"``: a GPU when there is one).

    Returns:
        :class:`VerifyResult`; its verdicts are per target (per target and face, with
        faces), its ``disruption`` rows per (target, condition), named as
        :func:`disrupt.api.protect` names them.

    Raises:
        ImageError: an image cannot be read (the message names the file).
        DisruptError: no target available; CheckpointError for bad weights.
    """
    src = load_image(original)
    prot = load_image(protected)
    notes: list[str] = []
    x = src.rgb
    x_prot = prot.rgb
    resized = tuple(x.shape) != tuple(x_prot.shape)
    if resized:
        (w0, h0), (w1, h1) = src.size, prot.size
        if abs((w0 / h0) / (w1 / h1) - 1) > ASPECT_TOLERANCE:
            notes.append(f"aspect ratios differ ({w0}x{h0} vs {w1}x{h1}): "
                         "are these two images of the same scene?")
        x_prot = _match_size(x_prot, x)
        notes.append(f"protected image is {w1}x{h1}, original {w0}x{h0}: resized the "
                     f"protected image to {w0}x{h0} (bicubic) before comparing")
    chosen = resolve_targets(targets, weights)
    dev = resolve_device(device)
    move_to(chosen, dev)
    x, x_prot = x.to(dev), x_prot.to(dev)

    # As protect measures (disrupt.api.protect), but with the faces a manipulator finds
    # on the protected image: the same canonical boxes are cut from both images.
    plan = plan_protection(x_prot, chosen, faces=faces, detector=detector)
    measured = evaluation_targets(chosen, plan)
    rows = measure_disruption(measured, x, x_prot, threshold=threshold, seed=seed)[0]
    outputs = {t.name: _outputs(t, x, x_prot, seed) for t in measured}
    verdicts = [_verdict(t.name, [r for r in rows if r.target == t.name]) for t in measured]
    whole = Box(0, 0, int(x.shape[-1]), int(x.shape[-2]))
    regions = {t.name: (t.box if isinstance(t, CropTarget) else whole).as_tuple()
               for t in measured}
    return VerifyResult(
        original=x.cpu(),
        protected=x_prot.cpu(),
        original_path=src.path,
        protected_path=prot.path,
        protected_size=prot.size,
        resized=resized,
        perceptibility={k: float(v[0]) for k, v in perceptibility(x_prot, x).items()},
        disruption=rows,
        verdicts=verdicts,
        outputs=outputs,
        conditions={t.name: [c.name for c in t.conditions] for t in measured},
        threshold=threshold,
        notes=notes,
        face_status=plan.face_status,
        detector=detector if plan.face_status in ("used", "none-found") else None,
        faces=[b.as_tuple() for b in plan.faces],
        crops=[b.as_tuple() for b in plan.canonical],
        regions=regions,
    )


def _outputs(target: Target, x: Tensor, x_prot: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Both edits ``(K, 1, 3, h, w)``, with the same random state as the metrics."""
    pair = []
    for image in (x, x_prot):
        with seeded(seed, image.device):
            pair.append(target_outputs(target, image).cpu())
    return pair[0], pair[1]
