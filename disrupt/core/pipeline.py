"""Where and how :func:`disrupt.api.protect` attacks a photo: faces, masks, EOT, universal start.

EOT transforms (JPEG by default) act on the photo region *before* the crops are
cut, in the order of the real world: the photo is posted and recompressed, then a
manipulator crops and resizes the face. (Applying JPEG to the already-resized
crops instead, as this module first did, left StarGAN disrupted after JPEG 75 on
2% of 8 test faces instead of 25%: the 8x8 blocks fall elsewhere.) The region's
top-left corner is snapped to the photo's 8-pixel grid so its JPEG blocks line up
with those of the saved photo. A region larger than :data:`EOT_ON_PHOTO_MAX_PIXELS`
(a whole large photo with no face found) gets its EOT on the resized crops instead:
a differentiable JPEG of 12 megapixels at every step costs gigabytes and minutes,
and its 8x8 blocks vanish in the 40-fold resize to the model's input anyway.

Every target is attacked *through crops*: with faces, the boxes a manipulator would
cut around each face (:func:`disrupt.core.faces.crop_boxes`); without, one box covering
the whole photo. Each crop is resized to the target's input size before the
objective (and any EOT transform) sees it, so the expensive parts run on small
images whatever the photo's size.

Memory. The attack runs on the smallest rectangle (the *region*) that holds every
crop box, not on the whole photo (with faces, a few face-sized squares; without,
the photo); pixels of the region outside every crop box get mask 0. Per step that costs a handful of
region-sized float tensors (``x``, ``x_adv``, its gradient, the projection's
temporaries) plus the crops; never a ``K x photo`` batch. Pixels outside the
region are copied from the input unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor

from attacks import Attack, Objective
from disrupt.core.budget import Budget
from disrupt.core.crops import CropJitter, CropsObjective, CropTarget
from disrupt.core.eot import ExpectationOverTransforms
from disrupt.core.faces import (
    CANONICAL_CROP,
    CROP_FAMILY,
    DEFAULT_CROP_SIZE,
    Box,
    CropSpec,
    bounding_box,
    crop_boxes,
    detect_faces,
    union_mask,
)
from disrupt.core.masking import (
    HighPassObjective,
    MaskedObjective,
    apply_mask,
    band_pass,
    texture_caps,
)
from disrupt.core.objectives import RUIZ_THRESHOLD, AwayFromClean, BalancedAway, Ensemble
from disrupt.core.precision import Autocast, autocast_default
from disrupt.core.protector import PerturbationNet, fit_to_budget, protector_raw
from disrupt.core.rounding import quantize_within
from disrupt.core.seeding import seeded
from disrupt.core.transforms import JPEG_EOT_TRANSFORMS, FixedJPEG, RandomJPEG, RandomTransform
from disrupt.core.universal import place_universal
from disrupt.errors import SettingError
from targets.base import Target

__all__ = [
    "EOT_ON_PHOTO_MAX_PIXELS",
    "EotPlacement",
    "amortized_protection",
    "changeable_mask",
    "eot_for_output",
    "FaceStatus",
    "Plan",
    "evaluation_targets",
    "find_faces",
    "DETECTORS",
    "CHROMA_SHARE",
    "GRAIN_SIGMA_PER_SIDE",
    "grain_sigma",
    "perturb",
    "plan_protection",
    "run_protection",
]

FaceStatus = Literal["used", "none-found", "off", "small-image", "outside-mask"]
"""``used``: faces found, only their crops protected. ``none-found``: looked, found
none, whole photo protected. ``off``: ``faces=False``. ``small-image``: ``faces=None``
and the photo is under twice the targets' input size, so the whole photo is
protected without looking. ``outside-mask``: faces found but the mask excludes all
their crops, so the mask alone decides."""

EotPlacement = Literal["photo", "crops", "off"]

#: Regions up to this many pixels get EOT on the photo before cropping; larger ones
#: on the resized crops (see the module docstring).
EOT_ON_PHOTO_MAX_PIXELS = 1 << 21

#: ``faces=None`` looks for faces when the photo's shorter side is at least this many
#: times the largest target input side.
AUTO_FACES_FACTOR = 2.0
#: The ``"focused"`` objective gives up on a target whose outputs moved less than this
#: fraction of Ruiz's threshold (Ruiz MSE 0.001) in the first :data:`GIVE_UP_AFTER` of the
#: steps. On the README photo StarGAN was at 0.008 by step 3, the other three at 0.0003 or less,
#: and none of them passed 0.001 later (``benchmarks/results/give_up_trajectory.json``).
GIVE_UP_FRACTION = 0.02
#: The share of the steps after which the focused objective decides what to give up
#: (rounded up: 3 of ``mid``'s 20; :func:`give_up_steps`). Deciding after 3 steps
#: instead of 5 disrupted as much on the README's 10 lever faces, a little faster
#: (``benchmarks/results/levers/give_up_after_{5,3}.json``); by step 3 the astronaut's
#: StarGAN score was already 8x the bar (``give_up_trajectory.json``).
GIVE_UP_AFTER = 0.15
#: The crops that ``crop_jitter`` attacks through. Narrower ones, matched to how far a
#: face detector's box moves between the original and the protected photo (a few
#: pixels), did not help either: README, "Narrower jitter does not fix it".
ATTACK_JITTER = CropJitter()


def give_up_steps(steps: int) -> int:
    """After how many of ``steps`` the focused objective decides: :data:`GIVE_UP_AFTER`
    of them, rounded up (``low``'s 10: 2, ``mid``'s 20: 3, ``high``'s 40: 6)."""
    return max(1, math.ceil(round(steps * GIVE_UP_AFTER, 6)))


#: Conditions per target scored at each call under the focused objective (``None``:
#: all). Sampling 2 or 3 of StarGAN's 5 disrupted fewer faces at equal steps
#: (``benchmarks/results/levers/conditions_{2,3}.json``), so it stays off.
FOCUSED_CONDITIONS_PER_CALL: int | None = None


@dataclass
class Plan:
    """Where to attack: crop boxes, the region holding them, and the effective mask.

    Boxes are in the photo's pixels. ``mask`` is ``(1, 1, h, w)`` over the region
    (``None``: every region pixel may change).
    """

    boxes: list[Box]
    faces: list[Box]
    face_status: FaceStatus
    region: Box
    mask: Tensor | None
    canonical: list[Box] = field(default_factory=list)  # one per face (reporting, universal)

    def eot_placement(self, eot: bool) -> EotPlacement:
        """Where EOT acts: ``"photo"`` (the region, before the crops), ``"crops"`` (the
        resized crops: regions over :data:`EOT_ON_PHOTO_MAX_PIXELS`), or ``"off"``."""
        if not eot:
            return "off"
        on_photo = self.region.width * self.region.height <= EOT_ON_PHOTO_MAX_PIXELS
        return "photo" if on_photo else "crops"

    @property
    def protected_pixels(self) -> int:
        """How many pixels the attack may change: the region's, less those masked out."""
        if self.mask is None:
            return self.region.width * self.region.height
        return max(1, int((self.mask > 0).sum()))


def _max_input_side(targets: Sequence[Target]) -> int | None:
    sides = [max(t.input_size) for t in targets if t.input_size is not None]
    return max(sides) if sides else None


#: Face detectors: ``haar`` (OpenCV's cascades, in the core install) and ``dlib``
#: (landmarks, the ``landmarks`` extra; :mod:`disrupt.core.landmarks`).
DETECTORS: tuple[str, ...] = ("haar", "dlib")


def find_faces(x: Tensor, detector: str = "haar") -> list[Box]:
    """Face boxes in the Haar detector's units (so :data:`CROP_FAMILY` applies to
    either detector), largest first. ``x`` is ``(1, 3, H, W)`` in ``[0, 1]``."""
    if detector == "haar":
        return detect_faces(x)
    if detector == "dlib":
        from disrupt.core.landmarks import detect_landmarks, landmark_box

        size = (x.shape[-2], x.shape[-1])
        return [landmark_box(f, size) for f in detect_landmarks(x)]
    raise SettingError(f"unknown face detector {detector!r} (use {' or '.join(DETECTORS)})")


def plan_protection(
    x: Tensor,
    targets: Sequence[Target],
    *,
    faces: bool | None = None,
    mask: Tensor | None = None,
    family: Sequence[CropSpec] = CROP_FAMILY,
    detector: str = "haar",
) -> Plan:
    """Decide which crops to attack and which pixels may change.

    Args:
        x: the photo ``(1, 3, H, W)`` in ``[0, 1]``.
        targets: the generators (their input sizes decide ``faces=None``).
        faces: ``True`` look for faces, ``False`` don't, ``None`` look only when the
            photo is at least :data:`AUTO_FACES_FACTOR` times the largest target input.
        mask: ``(1, 1, H, W)`` in ``[0, 1]`` (1 = protect) or ``None``.
        family: crop boxes per face.
        detector: ``"haar"`` or ``"dlib"`` (see :func:`find_faces`).
    """
    h, w = x.shape[-2:]
    whole = Box(0, 0, w, h)
    status: FaceStatus
    found: list[Box] = []
    if faces is False:
        status = "off"
    else:
        side = _max_input_side(targets)
        if faces is None and side is not None and min(h, w) < AUTO_FACES_FACTOR * side:
            status = "small-image"
        else:
            found = find_faces(x, detector)
            status = "used" if found else "none-found"
    boxes = [whole]
    canonical: list[Box] = []
    if found:
        boxes = [b for f in found for b in crop_boxes(f, (h, w), family)]
        canonical = [crop_boxes(f, (h, w), [CANONICAL_CROP])[0] for f in found]
    allowed = union_mask(boxes, (h, w)) if status == "used" else None
    if mask is not None:
        mask = mask.to(torch.float32).cpu()
        if allowed is not None:
            combined = allowed * mask
            if bool((combined > 0).any()):
                allowed = combined
            else:  # the mask excludes every face crop: the mask alone decides
                status, boxes, canonical, allowed = "outside-mask", [whole], [], mask
        else:
            allowed = mask
    # The region must hold every crop box: the objective crops from it. Its corner is
    # snapped to the 8-pixel JPEG grid (the extra pixels are outside every box: mask 0).
    box = bounding_box(boxes)
    region = Box(box.left // 8 * 8, box.top // 8 * 8, box.right, box.bottom)
    if allowed is None:
        return Plan(boxes, found, status, region, None, canonical)
    sub = allowed[..., region.top : region.bottom, region.left : region.right]
    full = bool((sub == 1).all())
    return Plan(boxes, found, status, region, None if full else sub.contiguous(), canonical)


def _objective_for(
    target: Target, x_region: Tensor, boxes: Sequence[Box],
    wrap: Callable[[Objective], Objective] | None = None, balanced: bool = False,
    jitter: CropJitter | None = None, jitter_generator: torch.Generator | None = None,
    sample: int | None = None, sample_seed: int = 0,
) -> Objective:
    """The target's objective through the crops; ``wrap`` (e.g. EOT) acts on each crop's.
    ``balanced``: :class:`~disrupt.core.objectives.BalancedAway` instead of the plain
    mean distance; otherwise ``sample`` conditions per call (seeded by ``sample_seed``;
    ``None``: all)."""
    size = target.input_size
    if size is None and len(boxes) > 1:
        size = (DEFAULT_CROP_SIZE, DEFAULT_CROP_SIZE)

    def make(clean_crops: Tensor) -> Objective:
        inner: Objective = (
            BalancedAway(target, clean_crops) if balanced else
            AwayFromClean(target, clean_crops, sample=sample,
                          generator=torch.Generator().manual_seed(sample_seed)))
        return wrap(inner) if wrap is not None else inner

    return CropsObjective(make, x_region, boxes, size, batched=bool(target.batch_independent),
                          jitter=jitter, generator=jitter_generator)


def run_protection(
    x: Tensor,
    targets: Sequence[Target],
    attack: Attack,
    plan: Plan,
    *,
    eot: bool = False,
    eot_samples: int = 1,
    transforms: Sequence[RandomTransform] = JPEG_EOT_TRANSFORMS,
    universal: Tensor | None = None,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    eot_generator: torch.Generator | None = None,
    callback: Callable[[int, Tensor], None] | None = None,
    balanced: bool = False,
    jitter: CropJitter | None = None,
    jitter_generator: torch.Generator | None = None,
    high_pass_sigma: float | None = None,
    low_pass_sigma: float | None = None,
    chroma: float = 1.0,
    start: Tensor | None = None,
    autocast: bool | None = None,
    give_up: bool = False,
    conditions_per_call: int | None = None,
    condition_seed: int = 0,
) -> Tensor:
    """Attack ``x`` ``(1, 3, H, W)`` in ``[0, 1]`` following ``plan``; return the float
    ``x_adv`` (same shape, ``[0, 1]``), equal to ``x`` outside the plan's region and
    wherever its mask is 0 (not yet quantized).

    Args:
        universal: a ``(3, S, S)`` perturbation to start from, resized into each face's
            canonical crop (the whole photo without faces) and masked.
        generator: seeds the attack's random start (or one generator per image of
            ``x``, for a batch of same-size photos; see :func:`attacks.random_delta`).
        eot_generator: seeds the EOT draws.
        balanced: score each target with :class:`~disrupt.core.objectives.BalancedAway`
            (every model and condition relative to the threshold, frozen past it)
            instead of the plain mean distance.
        jitter: attack through crops drawn around each box at every step (a
            :class:`~disrupt.core.crops.CropJitter`), seeded by ``jitter_generator``.
        high_pass_sigma: keep only the change's fine grain (no colour cast or blotch
            wider than a few sigma, in the photo's pixels): the objective sees, and the
            result gets, ``high_pass(x_adv - x, sigma)``
            (:func:`~disrupt.core.masking.high_pass`).
        low_pass_sigma: with ``high_pass_sigma``, also blur the change by this sigma
            (photo pixels; :func:`~disrupt.core.masking.low_pass`): a band-pass that
            drops grain finer than the models see (:func:`grain_sigma`).
        chroma: with ``high_pass_sigma``, keep this share of the change's colour part
            (:func:`~disrupt.core.masking.scale_chroma`; :data:`CHROMA_SHARE`).
        start: a protected photo ``(1, 3, H, W)`` in ``[0, 1]`` to start from (e.g. the
            amortized protector's), instead of ``universal``.
        autocast: run the generators in bfloat16 (:class:`~disrupt.core.precision.Autocast`);
            ``None``: on CUDA only (:func:`~disrupt.core.precision.autocast_default`).
        give_up: after :data:`GIVE_UP_AFTER` of the steps, stop attacking the targets whose outputs
            have moved less than :data:`GIVE_UP_FRACTION` of Ruiz's threshold on an
            image (:class:`~disrupt.core.objectives.Ensemble`; the ``"focused"``
            objective). Not with ``balanced``, which exists to lift such targets.
        conditions_per_call: score a random this many of each target's conditions per
            objective call (:class:`~disrupt.core.objectives.AwayFromClean`'s ``sample``;
            target ``i``'s draws seeded by ``condition_seed + i``); ``None``: all. Not
            with ``balanced``, which scores every condition.
    """
    if start is not None and universal is not None:
        raise ValueError("start and universal are two starting points: pass one")
    r = plan.region
    x_region = x[..., r.top : r.bottom, r.left : r.right].contiguous()
    boxes = [b.shifted(-r.left, -r.top) for b in plan.boxes]
    eot_gen = eot_generator if eot_generator is not None else torch.Generator().manual_seed(0)
    def with_eot(inner: Objective) -> Objective:
        return ExpectationOverTransforms(inner, transforms, samples=eot_samples,
                                         generator=eot_gen)

    placement = plan.eot_placement(eot)
    on_photo = placement == "photo"
    on_crops = with_eot if placement == "crops" else None
    if give_up and balanced:
        raise ValueError("give_up and balanced pull opposite ways: pass one")
    # The Ensemble is called once per EOT draw when the EOT acts on the whole photo.
    calls_per_step = eot_samples if on_photo else 1
    objective: Objective = Ensemble(
        [_objective_for(t, x_region, boxes, on_crops, balanced, jitter, jitter_generator,
                        conditions_per_call, condition_seed + i)
         for i, t in enumerate(targets)],
        give_up_after=give_up_steps(attack.steps) * calls_per_step if give_up else None,
        give_up_below=GIVE_UP_FRACTION * RUIZ_THRESHOLD / 4)  # the objectives' [0, 1] MSE
    if autocast_default(x.device) if autocast is None else autocast:
        objective = Autocast(objective)
    if on_photo:  # one draw per step for all targets: they all see the same posted photo
        objective = with_eot(objective)
    mask = plan.mask.to(x) if plan.mask is not None else None
    if mask is not None:
        objective = MaskedObjective(objective, x_region, mask)
    if high_pass_sigma is not None:  # outermost: the mask then applies to the filtered change
        objective = HighPassObjective(objective, x_region, high_pass_sigma, low_pass_sigma,
                                      chroma)
    if start is not None:
        start = start[..., r.top : r.bottom, r.left : r.right].to(x_region)
    if universal is not None:
        places = [b.shifted(-r.left, -r.top) for b in plan.canonical] or [
            Box(0, 0, x_region.shape[-1], x_region.shape[-2])
        ]
        delta = place_universal(universal.to(x), places, x_region.shape)
        if mask is not None:
            delta = delta * mask
        start = (x_region + delta).clamp(0.0, 1.0)
    adv = attack(x_region, objective, generator=generator, callback=callback, start=start)
    if high_pass_sigma is not None:
        adv = _high_passed(adv, x_region, high_pass_sigma, mask, low_pass_sigma, chroma)
    if mask is not None:
        adv = apply_mask(adv, x_region, mask)
    out = x.clone()
    out[..., r.top : r.bottom, r.left : r.right] = adv
    return out


def _high_passed(adv: Tensor, x: Tensor, sigma: float, mask: Tensor | None,
                 low_sigma: float | None = None, chroma: float = 1.0) -> Tensor:
    """``x`` plus the fine-grained part of ``adv - x`` (band-passed with ``low_sigma``,
    its colour scaled by ``chroma``),
    rescaled to the L2 norm the change had (over the mask): removing the blotches
    frees budget, and the grain gets it (per-pixel caps still apply when the result
    is rounded)."""
    delta = adv - x
    fine = band_pass(delta, sigma, low_sigma, chroma=chroma)
    if mask is not None:
        fine, delta = fine * mask, delta * mask
    norm = fine.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    scale = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1) / norm.clamp_min(1e-12)
    return (x + fine * scale).clamp(0.0, 1.0)


def eot_for_output(
    budget: Budget, jpeg_quality: float | None
) -> tuple[Budget, tuple[RandomTransform, ...]]:
    """The budget and EOT mix for an output format.

    A lossless output (``jpeg_quality=None``) keeps ``budget`` and
    :data:`~disrupt.core.transforms.JPEG_EOT_TRANSFORMS` (the file as saved, and JPEG
    50-95). A JPEG output is never seen unchanged, so its own codec
    (:class:`~disrupt.core.transforms.FixedJPEG` at ``jpeg_quality``) takes the
    unchanged view's place; EOT is turned on for it even where the preset has none,
    the attack then going through the output's codec alone.
    """
    if jpeg_quality is None:
        return budget, JPEG_EOT_TRANSFORMS
    saved = FixedJPEG(float(jpeg_quality))
    if budget.eot:
        return budget, (saved, RandomJPEG())
    return replace(budget, eot=True, eot_samples=1), (saved,)


def perturb(
    x: Tensor, targets: Sequence[Target], budget: Budget, plan: Plan, *,
    seed: int = 0, universal: Tensor | None = None,
    transforms: Sequence[RandomTransform] = JPEG_EOT_TRANSFORMS,
    progress: Callable[[int, int], None] | None = None,
    protector: PerturbationNet | None = None,
    refine_steps: int = 0,
) -> tuple[Tensor, Attack]:
    """The attack half of :func:`disrupt.api.protect`: seeded, rounded to 8 bits.

    Runs :func:`run_protection` with ``budget`` (its L2 radius set from the plan's
    protected pixels) and returns the protected photo ``(1, 3, H, W)`` on the 8-bit
    grid, within budget, with the attack that made it. ``seed`` seeds the random
    start, the EOT draws (``seed + 1``) and torch's global RNG for stochastic
    generators, which is restored afterwards.

    With ``protector`` the perturbation comes from its forward pass
    (:func:`amortized_protection`), then ``refine_steps`` steps of the budget's attack
    (none: the forward pass alone; the attack's own step count is then ignored).
    """
    attack = budget.attack_for(3 * plan.protected_pixels)
    # Under a PSNR floor, perceptual caps follow the photo's texture (the attack that
    # runs gets a cap per pixel; the one reported keeps the largest cap).
    running = attack
    if budget.perceptual and attack.norm == "l2" and isinstance(attack.linf_cap, float):
        r = plan.region
        x_region = x[..., r.top : r.bottom, r.left : r.right]
        running = replace(attack, linf_cap=texture_caps(x_region, attack.linf_cap))
    with seeded(seed, x.device):  # stochastic generators (pix2pix dropout) draw from it
        first = None
        if protector is not None:
            first = amortized_protection(x, protector, plan, running,
                                         perceptual=budget.perceptual)
            if refine_steps < 1:
                if progress is not None:
                    progress(1, 1)
                protected = quantize_within(first, x, running.eps, norm=running.norm,
                                            linf_cap=running.linf_cap, region=plan.region)
                return protected, attack
            running = replace(running, steps=refine_steps)
            attack = replace(attack, steps=refine_steps)

        def on_step(step: int, _scores: Tensor) -> None:
            if progress is not None:
                progress(step + 1, running.steps)

        x_adv = run_protection(
            x, targets, running, plan, eot=budget.eot, eot_samples=budget.eot_samples,
            transforms=transforms, universal=universal,
            generator=torch.Generator(device=x.device).manual_seed(seed),
            eot_generator=torch.Generator().manual_seed(seed + 1), callback=on_step,
            balanced=budget.objective == "balanced",
            jitter=ATTACK_JITTER if budget.crop_jitter else None,
            jitter_generator=torch.Generator().manual_seed(seed + 2),
            high_pass_sigma=blotch_sigma(plan) if budget.perceptual else None,
            low_pass_sigma=grain_sigma(plan) if budget.perceptual else None,
            chroma=CHROMA_SHARE if budget.perceptual else 1.0,
            start=first, give_up=budget.objective == "focused",
            conditions_per_call=(FOCUSED_CONDITIONS_PER_CALL
                                 if budget.objective == "focused" else None),
            condition_seed=seed + 3,
        )
    protected = quantize_within(x_adv, x, running.eps, norm=running.norm,
                                linf_cap=running.linf_cap, region=plan.region)
    return protected, attack


def amortized_protection(x: Tensor, protector: PerturbationNet, plan: Plan, attack: Attack,
                         *, perceptual: bool) -> Tensor:
    """The amortized protector's protected photo ``(1, 3, H, W)`` in ``[0, 1]`` (float,
    not yet rounded): its perturbation for each face's canonical crop (the whole region
    without faces), shaped and fitted to ``attack``'s budget as the iterative attack's
    result is (:func:`~disrupt.core.protector.fit_to_budget`: the high-pass of
    :func:`blotch_sigma` when ``perceptual``, the plan's mask, the L2 radius filled
    under the per-pixel caps). An L-inf ``attack`` gets its ``eps`` as every pixel's
    cap and the radius of a change of ``eps`` everywhere."""
    r = plan.region
    x_region = x[..., r.top : r.bottom, r.left : r.right]
    places = [b.shifted(-r.left, -r.top) for b in plan.canonical] or [
        Box(0, 0, x_region.shape[-1], x_region.shape[-2])
    ]
    mask = plan.mask.to(x) if plan.mask is not None else None
    if attack.norm == "l2":
        radius, caps = attack.eps, attack.linf_cap
    else:
        radius, caps = attack.eps * math.sqrt(x_region.numel()), attack.eps
    if isinstance(caps, Tensor):
        caps = caps.to(x)
    with torch.no_grad():
        protector = protector.to(x.device)
        raw = protector_raw(protector, x_region, places)
        delta = fit_to_budget(raw, radius, caps=caps, mask=mask,
                              sigma=blotch_sigma(plan) if perceptual else None)
    out = x.clone()
    out[..., r.top : r.bottom, r.left : r.right] = (x_region + delta).clamp(0.0, 1.0)
    return out


def changeable_mask(plan: Plan, size: tuple[int, int]) -> Tensor | None:
    """``(1, 1, H, W)`` bool mask of the pixels the plan lets the attack change (the
    face crop boxes, less what a user mask excludes), or ``None`` for the whole photo.
    ``size`` is the photo's ``(H, W)``."""
    r = plan.region
    whole = r.left == 0 and r.top == 0 and (r.bottom, r.right) == tuple(size)
    if plan.mask is None and whole:
        return None
    out = torch.zeros((1, 1, *size), dtype=torch.bool)
    inside = torch.ones((1, 1, r.height, r.width), dtype=torch.bool) if plan.mask is None \
        else plan.mask.cpu() > 0
    out[..., r.top : r.bottom, r.left : r.right] = inside
    return out


def blotch_sigma(plan: Plan) -> float:
    """The high-pass sigma for a plan's perceptual budget, in the photo's pixels: a
    32nd of the face crop's side (of the region's shorter side without faces), at least
    1 pixel. A crop shrunk to a 64 px model input then keeps detail down to about 2 of
    its pixels, while blotches a tenth of the face wide are removed. It follows the
    face at every size: capped at 6 pixels (until 2026-12-02), a 12 MP photo's 990 px
    face crop kept only detail finer than a model pixel, which the shrink averages
    away (README, "Speed")."""
    return max(1.0, _crop_side(plan) / 32)


def _crop_side(plan: Plan) -> int:
    """The shortest side of the plan's face crops (of its region without faces): the
    scale the perceptual shaping's filters follow."""
    boxes = plan.canonical or [plan.region]
    return min(min(b.width, b.height) for b in boxes)


#: The perceptual shaping's low-pass, as a fraction of the face crop's side: a third
#: of a pixel of a 64 px model input (0.42 photo pixels on an 89 px CelebA crop, 4.6
#: on a 12 MP photo's 990 px crop). Grain finer than that is averaged away when the
#: crop is shrunk, and JPEG removes it first; the budget it held goes to what the
#: models see. On 30 CelebA test faces it raised StarGAN's disruption on every
#: channel at the same visibility (as saved 85 -> 89%, JPEG 75 23 -> 28%, JPEG 50
#: 4 -> 11%, resize 43 -> 51%; README, "Dropping the finest grain"); half a pixel
#: fell to 77% as saved. ``None``: the high-pass alone. The amortized protector's
#: fit keeps the high-pass alone: it was trained that way.
GRAIN_SIGMA_PER_SIDE: float | None = 0.3 / 64


def grain_sigma(plan: Plan) -> float | None:
    """The low-pass sigma of a plan's perceptual shaping, in the photo's pixels:
    :data:`GRAIN_SIGMA_PER_SIDE` of the face crop's side (of the region's shorter side
    without faces), or ``None`` when it is off."""
    return None if GRAIN_SIGMA_PER_SIDE is None else _crop_side(plan) * GRAIN_SIGMA_PER_SIDE


#: The share of the change's colour part the perceptual shaping keeps
#: (:func:`~disrupt.core.masking.scale_chroma`): 1 keeps the change as the attack
#: made it.
CHROMA_SHARE: float = 1.0


def evaluation_targets(targets: Sequence[Target], plan: Plan) -> list[Target]:
    """What to measure disruption on: each target through each face's canonical crop
    (named ``"<target>@face<i>"``), or without faces each target on the whole photo
    (same name; wrapped in a whole-photo :class:`CropTarget` so a large photo is
    resized once per condition, never repeated once per condition)."""
    if plan.face_status != "used":
        whole = plan.boxes[0]
        return [CropTarget(t, whole, name=t.name) if t.input_size is not None else t
                for t in targets]
    return [CropTarget(t, box, name=f"{t.name}@face{i}")
            for i, box in enumerate(plan.canonical) for t in targets]



