"""The public library API: ``protect`` an image against deepfake generators.

The library returns, the CLI renders: nothing here prints. Progress goes through a
callback; diagnostics through :mod:`logging`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from attacks import Attack
from disrupt.core.budget import DEFAULT_STRENGTH, STRENGTHS, Budget, resolve_budget
from disrupt.core.faces import crop_family
from disrupt.core.masking import load_mask
from disrupt.core.pipeline import (
    Plan,
    changeable_mask,
    eot_for_output,
    evaluation_targets,
    perturb,
    plan_protection,
)
from disrupt.core.protector import PerturbationNet, load_protector
from disrupt.core.seeding import check_seed, move_to, resolve_device
from disrupt.core.universal import load_universal
from disrupt.errors import DisruptError, NotDisrupted, SettingError
from disrupt.eval.evaluation import Disruption, measure_disruption
from disrupt.eval.metrics import RUIZ_THRESHOLD, perceptibility
from disrupt.eval.perceptual import region_perceptibility
from disrupt.imaging import (
    ImageInput,
    LoadedImage,
    load_image,
    quantize,
    reload_saved,
    save_image,
)
from disrupt.imaging.pixels import to_pil
from disrupt.imaging.save import JPEG_QUALITY, check_jpeg_quality
from targets import Target, load_target
from targets.bundled import SPECS, load_bundled_shared
from targets.registry import list_targets

log = logging.getLogger(__name__)

# The default budget is the "mid" strength preset (disrupt.core.budget).
DEFAULT_EPS = STRENGTHS[DEFAULT_STRENGTH].eps

TargetSpec = str | Target


@dataclass
class ProtectResult:
    """What :func:`protect` made and measured.

    ``image`` is the protected image as the user gets it: ``(1, 3, H, W)`` float32 in
    ``[0, 1]``, on the 8-bit grid, at the input's size. All figures are measured on it.
    """

    image: Tensor
    source: LoadedImage
    attack: Attack
    targets: list[str]
    perceptibility: dict[str, float]
    disruption: list[Disruption]
    seconds: float
    seed: int
    output_path: Path | None = None
    threshold: float = RUIZ_THRESHOLD
    #: The strength preset the budget started from, and whether EOT was used.
    strength: str = DEFAULT_STRENGTH
    eot: bool = False
    #: Where EOT acted: ``"photo"`` (before the face crops), ``"crops"`` (on the
    #: resized crops, for regions over 2 MP) or ``"off"``.
    eot_on: str = "off"
    #: Detected face boxes ``(left, top, right, bottom)`` in the photo's pixels: those
    #: the attack used (found on the input), and those found again on the protected
    #: image, through whose crops :attr:`disruption` was measured.
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)
    measured_faces: list[tuple[int, int, int, int]] = field(default_factory=list)
    #: ``used`` (only face crops perturbed), ``none-found`` (looked, none: whole photo
    #: protected), ``off``, ``small-image`` (auto mode skipped detection) or
    #: ``outside-mask``; see :data:`disrupt.core.pipeline.FaceStatus`.
    face_status: str = "off"
    masked: bool = False
    universal: bool = False
    #: Refinement steps after the amortized protector's forward pass (``None``: no
    #: protector; ``0``: the forward pass alone, ``attack`` then never ran).
    protector_steps: int | None = None
    #: The PSNR floor (dB) over the protected pixels, or ``None`` for a plain L-inf
    #: budget; with a floor, ``attack`` is L2 (``eps`` the radius) with ``linf_cap``.
    psnr_floor: float | None = None
    #: What the attack maximised: ``"balanced"``, ``"mean"`` or ``"focused"`` (see
    #: :func:`protect`).
    objective: str = "mean"
    #: Whether per-pixel caps followed the texture (see :func:`protect`).
    perceptual: bool = False
    #: Whether the attack went through a distribution of crops.
    crop_jitter: bool = False
    #: Which crops around each detected face the attack went through: ``"canonical"``
    #: or ``"family"`` (see :func:`protect`).
    crops: str = "canonical"
    #: Visibility over the pixels the attack could change (the union of the face crop
    #: boxes, the masked-in pixels, or the whole photo): ``psnr``, ``ssim``,
    #: ``linf_255``, ``ciede2000_mean``, ``ciede2000_p95``, ``changed_fraction``,
    #: ``pixels`` (:func:`disrupt.eval.perceptual.region_perceptibility`), on the
    #: saved image. The photo-wide :attr:`perceptibility` counts untouched background.
    region_perceptibility: dict[str, float] = field(default_factory=dict)
    #: The JPEG quality the attack optimised through (the output's own codec, in
    #: place of the unchanged view in the EOT mix), or ``None`` for a lossless output.
    through_jpeg: int | None = None
    #: The face detector that placed the crops (``"haar"`` or ``"dlib"``), or ``None``
    #: when none ran (see :attr:`face_status`).
    detector: str | None = None
    #: False when ``protect(measure=False)`` skipped the measurement: then
    #: :attr:`perceptibility`, :attr:`region_perceptibility`, :attr:`disruption` and
    #: :attr:`measured_faces` are empty.
    measured: bool = True

    @property
    def unchanged(self) -> bool:
        """True when the protected image equals the input on the 8-bit grid (a budget
        too small to survive rounding, or a mask that excludes everything changed)."""
        return bool(torch.equal(self.image, quantize(self.source.rgb.cpu())))

    @property
    def disrupted_fraction(self) -> float:
        """Fraction of (target, condition) pairs whose output is disrupted."""
        if not self.disruption:
            return 0.0
        return sum(d.disrupted for d in self.disruption) / len(self.disruption)

    def to_pil(self) -> Image.Image:
        """The protected image as a PIL image (RGB, or RGBA with the source's alpha)."""
        rgb = to_pil(self.image)
        alpha = self.source.alpha
        if alpha is not None:
            a = alpha if alpha.dtype.name == "uint8" else (alpha // 257).astype("uint8")
            rgb.putalpha(Image.fromarray(a))
        return rgb

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the protected image atomically; never over the source file. A JPEG is
        written at the quality the attack went through (:attr:`through_jpeg`), else 95."""
        self.output_path = save_image(self.image, Path(path), like=self.source,
                                      overwrite=overwrite,
                                      jpeg_quality=self.through_jpeg or JPEG_QUALITY)
        return self.output_path

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "input": str(self.source.path) if self.source.path else None,
            "output": str(self.output_path) if self.output_path else None,
            "size": list(self.source.size),
            "attack": {
                "name": self.attack.name,
                "eps": self.attack.eps,
                "eps_255": self.attack.eps * 255,
                "alpha": self.attack.alpha,
                "steps": (self.attack.steps if self.protector_steps is None
                          else self.protector_steps),
                "norm": self.attack.norm,
                "linf_cap_255": (None if self.attack.linf_cap is None
                                 else self.attack.linf_cap * 255),
                "psnr_floor": self.psnr_floor,
                "objective": self.objective,
                "perceptual": self.perceptual,
                "crop_jitter": self.crop_jitter,
                "crops": self.crops,
                "through_jpeg": self.through_jpeg,
            },
            "seed": self.seed,
            "strength": self.strength,
            "eot": self.eot,
            "eot_on": self.eot_on,
            "faces": [list(b) for b in self.faces],
            "measured_faces": [list(b) for b in self.measured_faces],
            "face_status": self.face_status,
            "detector": self.detector,
            "masked": self.masked,
            "universal": self.universal,
            "protector": self.protector_steps is not None,
            "targets": self.targets,
            "perceptibility": self.perceptibility,
            "region_perceptibility": self.region_perceptibility,
            "threshold": self.threshold,
            "measured": self.measured,
            "disrupted_fraction": self.disrupted_fraction,
            "disruption": [d.to_dict() for d in self.disruption],
            "seconds": self.seconds,
        }


def check_disrupted(result: ProtectResult) -> None:
    """Raise :class:`~disrupt.errors.NotDisrupted` naming each target with outputs at or
    under the threshold (what ``require_disruption`` asks for)."""
    below = [d for d in result.disruption if not d.disrupted]
    if not below:
        return
    per_target: dict[str, int] = {}
    for d in below:
        per_target[d.target] = per_target.get(d.target, 0) + 1
    totals = {d.target: 0 for d in result.disruption}
    for d in result.disruption:
        totals[d.target] += 1
    named = ", ".join(f"{t} ({n}/{totals[t]} outputs)" for t, n in per_target.items())
    where = result.output_path or result.source.path or "image"
    raise NotDisrupted(
        f"{where}: not disrupted past Ruiz MSE {result.threshold:g}: {named}; try "
        "--strength high or a lower --psnr", result, [f"{d.target}: {d.condition}" for d in below])


def default_targets() -> list[str]:
    """Names of the default bundled targets whose weights are installed (the offline
    default; ``targets.bundled.BUNDLED_DEFAULT``).

    A bundled model whose weights are missing is left out with a logged warning, so a
    damaged install weakens the protection visibly, never silently.
    """
    from targets.bundled import BUNDLED_DEFAULT, weights_installed

    names = []
    for info in list_targets():
        if not info.bundled or info.name not in BUNDLED_DEFAULT:
            continue
        if weights_installed(info.name):
            names.append(info.name)
        else:
            log.warning("bundled model %s is not installed (its weights are missing): the "
                        "default protects without it", info.name)
    return names


def resolve_targets(
    targets: Sequence[TargetSpec] | None,
    weights: Mapping[str, str | Path] | None = None,
) -> list[Target]:
    """Turn names (or ready targets) into targets; ``None`` means the bundled set.

    A bundled model named without ``weights`` is built once per process and shared by
    later calls (:func:`targets.bundled.load_bundled_shared`).

    Raises:
        SettingError: a name given twice. DisruptError: no bundled weights installed.
    """
    weights = dict(weights or {})
    if targets is None or len(targets) == 0:
        names: Sequence[TargetSpec] = default_targets()
        if not names:
            raise DisruptError(
                "no target to protect against: no bundled weights are installed; "
                "pass --target NAME --weights PATH (see `disrupt targets`)"
            )
    else:
        names = targets
    seen = [spec if isinstance(spec, str) else spec.name for spec in names]
    repeated = sorted({n for n in seen if seen.count(n) > 1})
    if repeated:
        raise SettingError(f"target {', '.join(repeated)} given more than once "
                           "(each target is attacked once)")
    resolved: list[Target] = []
    for spec in names:
        if isinstance(spec, str) and spec in SPECS and spec not in weights:
            resolved.append(load_bundled_shared(spec))  # built once per process
        elif isinstance(spec, str):
            resolved.append(load_target(spec, weights=weights.get(spec)))
        else:
            resolved.append(spec)
    return resolved


LOSSY_SUFFIXES = (".jpg", ".jpeg")


def protect(
    image: ImageInput,
    *,
    targets: Sequence[TargetSpec] | None = None,
    weights: Mapping[str, str | Path] | None = None,
    budget: Budget | None = None,
    strength: str | None = None,
    attack: str | Attack | None = None,
    eps: float | None = None,
    steps: int | None = None,
    alpha: float | None = None,
    eot: bool | None = None,
    psnr: float | None = None,
    objective: str | None = None,
    perceptual: bool | None = None,
    crop_jitter: bool | None = None,
    crops: str | None = None,
    faces: bool | None = None,
    detector: str = "haar",
    mask: ImageInput | None = None,
    universal: str | Path | Tensor | None = None,
    protector: str | Path | PerturbationNet | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    output: str | Path | None = None,
    overwrite: bool = False,
    jpeg_quality: int | None = None,
    require_disruption: bool = False,
    measure: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> ProtectResult:
    """Add an adversarial perturbation to ``image`` that disrupts the given generators.

    Args:
        image: a path, bytes, file object, PIL image, numpy array ``(H,W[,C])``
            or tensor ``(3,H,W)``/``(1,3,H,W)`` in ``[0,1]``. Any mode and size.
        targets: target names or :class:`~targets.Target` objects; ``None`` for the
            bundled set (every model, every condition).
        weights: checkpoint path per target name, for targets that need one.
        budget: a budget already settled by :func:`~disrupt.core.budget.resolve_budget`
            (the CLI's path); it excludes ``strength``, ``attack``, ``eps``, ``steps``,
            ``alpha``, ``eot`` and ``psnr``, which otherwise build it here.
        strength: ``"low"``, ``"mid"`` (default) or ``"high"``: a budget preset
            (PSNR floor, largest change, PGD steps and EOT; the table is in
            :mod:`disrupt.core.budget`). ``attack``, ``eps``, ``steps``, ``alpha``, ``eot``
            and ``psnr`` given explicitly override the preset's value.
        attack: attack name (``fgsm``, ``ifgsm``, ``pgd``, ``mifgsm``, plugins) or an
            :class:`~attacks.Attack` (which keeps its own eps, steps and alpha).
        eps: the largest change of any pixel, in ``[0, 1]`` units (with ``psnr=0``
            the whole budget: plain L-inf).
        steps, alpha: iterations and step size; ``None``: the preset's steps and the
            attack's default step size (``alpha`` only with ``psnr=0``).
        eot: expectation over JPEG recompression (quality 50-95) of the photo, before
            the face crops (:data:`disrupt.core.transforms.JPEG_EOT_TRANSFORMS`).
        psnr: PSNR floor in dB over the pixels the attack may change (an L2 budget,
            with ``eps`` as the per-pixel cap); ``None``: the preset's; ``0``: no floor,
            plain L-inf at ``eps``.
        objective: ``"balanced"`` (every model pushed relative to the disruption
            threshold and frozen past it), ``"mean"`` (the plain mean distance) or
            ``"focused"`` (the mean, giving up after 15% of the steps on models
            whose outputs moved less than 2% of the threshold: they cost time and
            gain nothing); ``None``: the preset's.
        perceptual: under a PSNR floor, cap each pixel by the local texture (flat skin
            at one 8-bit level, hair and edges up to ``eps``) and band-pass the change
            (no blotch wider than a 32nd of the face crop, no grain finer than a third
            of a model pixel; :func:`~disrupt.core.pipeline.blotch_sigma`,
            :func:`~disrupt.core.pipeline.grain_sigma`); ``None``: the preset's.
        crop_jitter: attack through crops drawn around each canonical one (scale
            +-10%, shift +-5%), as a manipulator's own alignment would cut; ``None``:
            the preset's.
        crops: around each detected face, attack through ``"canonical"`` (the one
            CelebA-style crop where disruption is measured; the default) or
            ``"family"`` (seven crops from the face-swap's tight one to a wider
            CelebA one: :data:`~disrupt.core.faces.CROP_FAMILY`); ``None``: the
            preset's. On whole photos the family costs most of the disruption
            (README, "What the default protection achieves").
        faces: ``True``: find faces and perturb only the crops a manipulator would
            take around them (the rest of the photo stays exactly unchanged);
            ``False``: perturb the whole photo; ``None`` (default): look for faces when
            the photo is at least twice the targets' input size. When no face is found
            the whole photo is protected and ``result.face_status`` says
            ``"none-found"`` (see :mod:`disrupt.core.faces`).
        detector: ``"haar"`` (OpenCV's cascades, the default) or ``"dlib"`` (eye
            landmarks: finds more faces and survives JPEG better; needs
            ``pip install 'disrupt-deepfakes[landmarks]'``; see
            :mod:`disrupt.core.landmarks`). Disruption is measured through faces found
            again, by the same detector, on the protected image.
        mask: an image the photo's size (file, PIL, array or tensor): white = may
            change, black = keep exactly, grey = a proportional share of the budget.
        universal: a universal perturbation (safetensors file from
            :func:`disrupt.core.universal.save_universal`, a ``(3, S, S)`` tensor, or
            ``"bundled"`` for the one trained against the bundled models) to start
            from, resized into each face crop; the attack then refines it for
            ``steps`` (default 5) steps.
        protector: the amortized protector (``"bundled"`` for the one trained against
            the bundled models, a safetensors file from
            :func:`disrupt.core.protector.save_protector`, or a ready
            :class:`~disrupt.core.protector.PerturbationNet`): one forward pass makes
            the perturbation of each face crop, shaped and fitted to the same budget as
            the attack's; then ``steps`` (default 0) refinement steps. The fast mode
            (``disrupt protect --fast``). Excludes ``universal``.
        seed: seeds the random start, the EOT draws and any stochastic generator
            (0 to 2**64 - 1). Calls from several threads are each deterministic.
        device: where to run: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
            ``"auto"`` (a GPU when there is one).
        output: if given, write the protected image there (atomically; never over
            the input; an existing file only with ``overwrite``). A JPEG output
            (``.jpg``/``.jpeg``, quality 95, 4:4:4) is optimised through that codec
            (see :func:`~disrupt.core.pipeline.eot_for_output`) and measured as
            written; WebP, PNG and TIFF outputs are lossless.
        jpeg_quality: the quality of a JPEG ``output`` (1 to 100; default 95), which
            the attack then optimises through. Only with a ``.jpg``/``.jpeg`` output.
        require_disruption: raise :class:`~disrupt.errors.NotDisrupted` (after writing
            ``output``) when any target's output for any condition stays at or under
            the threshold, so a pipeline can act on it.
        measure: ``False`` skips everything after the save: the visibility metrics,
            the second face search on the protected image and the run of every model
            and condition on it, which take most of a fast call's time (for an upload
            pipeline that trusts the budget). The result then has
            ``measured=False`` and no figures. Not with ``require_disruption``.
        progress: ``progress(step, total)`` after each attack step.

    Returns:
        :class:`ProtectResult`, with figures measured on the 8-bit image.

    Raises:
        DisruptError: unreadable image, mask or universal file; a mask of another
            size, or black everywhere. Its subclass SettingError (also a
            ``ValueError``): an unknown strength, a bad attack setting, a budget too
            small to survive 8-bit rounding, a bad seed or device, a repeated target.
            Its subclass InputTypeError (also a ``TypeError``): an image of a type
            no loader accepts.
    """
    started = time.perf_counter()
    check_seed(seed)
    dev = resolve_device(device)
    if budget is None:
        budget = resolve_budget(strength or DEFAULT_STRENGTH, attack=attack, eps=eps,
                                steps=steps, alpha=alpha, eot=eot,
                                universal=universal is not None, psnr=psnr,
                                objective=objective, perceptual=perceptual,
                                crop_jitter=crop_jitter, crops=crops,
                                protector=protector is not None)
    elif any(v is not None for v in (strength, attack, eps, steps, alpha, eot, psnr, objective,
                                     perceptual, crop_jitter, crops)):
        raise SettingError("budget= already settles strength, attack, eps, steps, alpha, eot, "
                           "psnr, objective, perceptual, crop_jitter and crops: pass one or "
                           "the other")
    lossy = output is not None and Path(output).suffix.lower() in LOSSY_SUFFIXES
    if jpeg_quality is not None and not lossy:
        raise SettingError(f"jpeg_quality={jpeg_quality!r} needs a .jpg or .jpeg output "
                           f"(got {'no output' if output is None else repr(str(output))})")
    quality = check_jpeg_quality(jpeg_quality if jpeg_quality is not None else JPEG_QUALITY)
    if require_disruption and not measure:
        raise SettingError("require_disruption needs the measurement: drop measure=False")
    source = load_image(image)
    chosen = resolve_targets(targets, weights)
    mask_tensor = load_mask(mask, source.size) if mask is not None else None
    if protector is not None and universal is not None:
        raise SettingError("protector= and universal= are two starting points: pass one")
    start_delta = load_universal(universal) if universal is not None else None
    net = load_protector(protector) if protector is not None else None
    refine = (budget.refine_steps or 0) if net is not None else None
    move_to(chosen, dev)
    x = source.rgb.to(dev)
    plan = plan_protection(x, chosen, faces=faces, mask=mask_tensor, detector=detector,
                           family=crop_family(budget.crops))
    budget, transforms = eot_for_output(budget, quality if lossy else None)
    protected, atk = perturb(x, chosen, budget, plan, seed=seed, universal=start_delta,
                             transforms=transforms, progress=progress, protector=net,
                             refine_steps=refine or 0)
    return finish_protection(source, x, protected, atk, chosen, budget, plan, seed=seed,
                             faces=faces, masked=mask_tensor is not None,
                             universal=start_delta is not None, output=output,
                             overwrite=overwrite, require_disruption=require_disruption,
                             started=started, protector_steps=refine,
                             through_jpeg=quality if lossy else None, detector=detector,
                             measure=measure)


def finish_protection(
    source: LoadedImage, x: Tensor, protected: Tensor, atk: Attack, chosen: Sequence[Target],
    budget: Budget, plan: Plan, *, seed: int, faces: bool | None, masked: bool,
    universal: bool, output: str | Path | None, overwrite: bool, require_disruption: bool,
    started: float, protector_steps: int | None = None, through_jpeg: int | None = None,
    detector: str = "haar", measure: bool = True,
) -> ProtectResult:
    """The measuring half of :func:`protect` (also :func:`disrupt.batch.protect_batch`'s):
    save ``protected`` ``(1, 3, H, W)`` (8-bit levels in ``[0, 1]``) if asked, and
    measure perceptibility and disruption on what was saved (unless not ``measure``)."""
    result = ProtectResult(
        image=protected.cpu(),
        source=source,
        attack=atk,
        targets=[t.name for t in chosen],
        perceptibility={},
        disruption=[],
        seconds=0.0,
        seed=seed,
        strength=budget.strength,
        eot=budget.eot,
        eot_on=plan.eot_placement(budget.eot),
        faces=[b.as_tuple() for b in plan.faces],
        face_status=plan.face_status,
        masked=masked,
        universal=universal,
        protector_steps=protector_steps,
        psnr_floor=budget.psnr,
        objective=budget.objective,
        perceptual=budget.perceptual and budget.psnr is not None,
        crop_jitter=budget.crop_jitter,
        crops=budget.crops,
        through_jpeg=through_jpeg,
        detector=detector if plan.face_status in ("used", "none-found") else None,
        measured=measure,
    )
    measured = protected
    if output is not None:
        saved = result.save(output, overwrite=overwrite)
        if saved.suffix.lower() in LOSSY_SUFFIXES and measure:
            # Measure what the user gets: the lossy file as written, not the tensor.
            measured = reload_saved(saved).to(x.device)
    if not measure:
        result.seconds = time.perf_counter() - started
        return result
    result.perceptibility = {k: float(v[0]) for k, v in perceptibility(measured, x).items()}
    result.region_perceptibility = region_perceptibility(
        measured, x, changeable_mask(plan, (x.shape[-2], x.shape[-1])), st_lpips_net=None)
    # Measure as a manipulator (and `disrupt verify`) would: faces detected on the
    # protected file itself, which can fall a pixel away from those found on the input.
    seen = (plan_protection(measured, chosen, faces=faces, detector=detector)
            if plan.face_status == "used" else plan)
    result.measured_faces = [b.as_tuple() for b in seen.faces]
    result.disruption = measure_disruption(evaluation_targets(chosen, seen), x, measured,
                                           seed=seed)[0]
    result.seconds = time.perf_counter() - started
    if result.unchanged:
        log.warning("%s: the protected image equals the input: the budget is too small to "
                    "survive 8-bit rounding", source.path or "image")
    if require_disruption:
        check_disrupted(result)
    log.debug("protected %s in %.2fs", source.path, result.seconds)
    return result
