"""Strength presets: ``protect(..., strength="low" | "mid" | "high")`` and ``--strength``.

Each preset is a documented budget with two bounds: a **PSNR floor** over the
protected pixels (an L2 budget: the perturbation's energy) and a **largest change**
per pixel (an L-inf cap). The attack is PGD under the L2 budget with the cap
(:func:`attacks.run_attack` with ``norm="l2"`` and ``linf_cap``). Explicit ``eps``,
``steps``, ``alpha``, ``attack``, ``eot`` or ``psnr`` override the preset's value for
that field only; ``psnr=0`` turns the L2 budget off and gives a plain L-inf attack
at ``eps`` (the budget of Ruiz et al. and of earlier versions of this tool).

======== ========= ========= ====== ====== ====================================== ==========
strength PSNR      max change attack steps  EOT (expectation over transformation)  samples
======== ========= ========= ====== ====== ====================================== ==========
low      >= 37 dB  8/255     pgd    10     off                                    -
mid      >= 33 dB  16/255    pgd    20     JPEG 50-95 or the photo as saved,      1 per step
                                           drawn per step, applied to the photo
                                           before the face crops
                                           (:data:`~disrupt.core.transforms.JPEG_EOT_TRANSFORMS`)
high     >= 30 dB  24/255    pgd    40     as mid                                 2 per step
======== ========= ========= ====== ====== ====================================== ==========

Why an L2 budget. At the same visibility, an L-inf attack spreads its change evenly
over every pixel, and JPEG removes most of it; an L2 budget lets the attack put its
energy where the generators are sensitive and where it survives compression. On
100 held-apart CelebA faces against the four bundled models (``mid``, EOT over
JPEG, 20 steps), the bundled StarGAN was disrupted after JPEG 75 on 33% of outputs
with ``>= 33 dB, max 16/255``, and on 12% with L-inf 8/255 (which gives 31.7 dB);
as saved 84% against 79%. See the README, "Robustness and limits".

The PSNR floor holds over the pixels the attack may change (the face crops with
faces, the masked-in pixels with a mask, else the whole photo): the L2 radius is
``10 ** (-psnr / 20) * sqrt(3 * pixels)`` on the ``[0, 1]`` scale. PSNR over a whole
photo with a small face is higher.

Every preset also shapes the change for the eye (``perceptual``, off with
``perceptual=False`` / ``--no-perceptual``): each pixel's cap follows the local
texture (one 8-bit level on flat skin or sky, the full cap in hair and on edges:
:func:`~disrupt.core.masking.texture_caps`), and the change keeps only its fine grain
(:func:`~disrupt.core.masking.high_pass`, sigma a 32nd of the face crop), rescaled to
the energy it had, so no colour cast or blotch forms. Before it, the README's
example face got a red patch on one cheek and a green cast over the skin at the
same PSNR. The attack maximises the plain mean distance over models and conditions,
and after 15% of its steps stops attacking the models whose outputs have not
moved (``objective="focused"``: on 10 CelebA test faces it disrupts StarGAN exactly as
often as the plain ``"mean"``, 94% as saved, in half the time;
``benchmarks/results/levers/objective_*.json``), through the one canonical crop of
each detected face
(``crops="canonical"``: the crop where disruption is measured; on 4 LFW frames and the
README photo it disrupted StarGAN through the face found again on the saved file on
52% of outputs under the plain mean (48% focused), against 0% through the seven-box
family, ``benchmarks/results/redetection*.json``); ``"balanced"``, ``crop_jitter`` and
``crops="family"`` are the other levers (README, "What the default protection
achieves").

``mid`` is the default. With ``universal=...`` the attack starts from the universal
perturbation and, unless told otherwise, refines it for
:data:`UNIVERSAL_REFINE_STEPS` steps of a quarter of the budget.

Re-measure perceptibility (and print a table) with::

    python benchmarks/bench_presets.py [--image PHOTO] [--target NAME ...]
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from attacks import Attack, attack_info, create_attack, default_alpha
from disrupt.errors import SettingError

__all__ = [
    "DEFAULT_STRENGTH",
    "MAX_PSNR_FLOOR",
    "MIN_EPS",
    "STRENGTHS",
    "PROTECTOR_REFINE_STEPS",
    "UNIVERSAL_REFINE_STEPS",
    "CROPS",
    "Budget",
    "Strength",
    "StrengthPreset",
    "describe_budget",
    "parse_fraction",
    "psnr_floor_attack",
    "resolve_budget",
]

Strength = Literal["low", "mid", "high"]
DEFAULT_STRENGTH: Strength = "mid"
#: Refinement steps after starting from a universal perturbation (unless ``steps`` is given).
UNIVERSAL_REFINE_STEPS = 5
#: Attack steps after the amortized protector's forward pass (unless ``steps`` is given):
#: none, so the fast mode costs one forward pass (README, "Amortized protector").
PROTECTOR_REFINE_STEPS = 0
#: What the attack maximises (:attr:`Budget.objective`).
OBJECTIVES: tuple[str, ...] = ("balanced", "mean", "focused")
#: Which crops around a detected face the attack goes through (:attr:`Budget.crops`).
CROPS: tuple[str, ...] = ("canonical", "family")
#: Smallest largest-change: one 8-bit level (anything smaller rounds away on saving).
MIN_EPS = 1 / 255
#: Highest PSNR floor: a one-level change on every pixel, 20 log10(255) = 48.1 dB.
MAX_PSNR_FLOOR = 20 * math.log10(255)


@dataclass(frozen=True)
class StrengthPreset:
    """One named budget: PSNR floor (dB), L-inf cap ``eps`` in ``[0, 1]`` units,
    attack, steps, EOT."""

    name: str
    eps: float
    attack: str
    steps: int
    eot: bool
    eot_samples: int
    summary: str
    psnr: float | None = None
    objective: str = "mean"
    perceptual: bool = False
    crop_jitter: bool = False
    crops: str = "canonical"


STRENGTHS: dict[str, StrengthPreset] = {
    "low": StrengthPreset("low", 8 / 255, "pgd", 10, False, 1,
                          "PSNR >= 37 dB, max change 8/255, PGD 10 steps, no EOT, "
                          "perceptual shaping", psnr=37.0, perceptual=True,
                          objective="focused"),
    "mid": StrengthPreset("mid", 16 / 255, "pgd", 20, True, 1,
                          "PSNR >= 33 dB, max change 16/255, PGD 20 steps, EOT over JPEG, "
                          "perceptual shaping", psnr=33.0, perceptual=True,
                          objective="focused"),
    "high": StrengthPreset("high", 24 / 255, "pgd", 40, True, 2,
                           "PSNR >= 30 dB, max change 24/255, PGD 40 steps, EOT x2, "
                           "perceptual shaping", psnr=30.0, perceptual=True,
                           objective="focused"),
}


@dataclass(frozen=True)
class Budget:
    """What :func:`resolve_budget` settled on: the attack, EOT, and the PSNR floor.

    ``attack`` is the L-inf template: with ``psnr`` set, its ``eps`` is the per-pixel
    cap and :meth:`attack_for` turns it into the L2 attack for a given image.
    """

    attack: Attack
    eot: bool
    eot_samples: int
    strength: str
    psnr: float | None = None
    universal: bool = False
    #: ``"balanced"`` (:class:`~disrupt.core.objectives.BalancedAway`: every model
    #: relative to the threshold, frozen past it), ``"mean"`` (the plain mean
    #: distance of Ruiz et al.) or ``"focused"`` (the mean, which after 15% of
    #: the steps stops attacking models whose outputs have not moved:
    #: :data:`~disrupt.core.pipeline.GIVE_UP_FRACTION`).
    objective: str = "mean"
    #: Shape the change for the eye: per-pixel caps that follow the texture (flat skin
    #: by at most one level, hair and edges up to the cap;
    #: :func:`~disrupt.core.masking.texture_caps`), and no colour cast or blotch wider
    #: than a few pixels (:func:`~disrupt.core.masking.high_pass`).
    perceptual: bool = False
    #: Attack through crops drawn around the canonical ones (scale +-10%, shift +-5%:
    #: :class:`~disrupt.core.crops.CropJitter`) instead of the fixed crops.
    crop_jitter: bool = False
    #: Around each detected face, attack through ``"canonical"`` (the CelebA-style crop
    #: where disruption is reported, :data:`~disrupt.core.faces.CANONICAL_CROP`) or
    #: ``"family"`` (seven crops a manipulator might take,
    #: :data:`~disrupt.core.faces.CROP_FAMILY`). Photos without a detected face are one
    #: crop either way.
    crops: str = "canonical"
    #: With the amortized protector: the attack steps after its forward pass (``0``:
    #: the forward pass alone; :attr:`attack` then keeps one step, never run).
    #: ``None``: no protector.
    refine_steps: int | None = None

    def attack_for(self, values: int) -> Attack:
        """The attack to run on ``values`` changeable values (3 x protected pixels):
        :attr:`attack` itself without a PSNR floor, else :func:`psnr_floor_attack`."""
        if self.psnr is None:
            return self.attack
        return psnr_floor_attack(self.attack, self.psnr, values, refine=self.universal)

    def describe(self) -> str:
        """One line: ``pgd, PSNR >= 33 dB over the protected pixels, max change 16.0/255, ...``."""
        a = self.attack
        text = describe_budget(a.name, a.eps, a.steps, self.psnr)
        if self.refine_steps is not None:
            head = text.rsplit(", ", 1)[0]
            return f"{head}, amortized protector + {self.refine_steps} refinement steps"
        return text


def parse_fraction(text: str) -> float:
    """``"8/255"`` or ``"0.031"`` -> float; :class:`SettingError` for anything else. The
    one parser of budget values (``--eps``, ``--alpha``, bench configs, scripts)."""
    try:
        return float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise SettingError(f"{text!r} is not a number or a fraction like 8/255") from None


def psnr_floor_attack(attack: Attack, psnr: float, values: int, *, refine: bool = False) -> Attack:
    """``attack`` (L-inf, its ``eps`` the per-pixel cap) under a PSNR floor over ``values``.

    PGD under the L2 radius ``10 ** (-psnr / 20) * sqrt(values)`` (so the change's RMS
    over those values is at most that PSNR's), with ``linf_cap = attack.eps`` and the
    default step for that radius (a quarter of it with ``refine``: a universal start).
    """
    if values < 1:
        raise ValueError(f"values must be >= 1, got {values}")
    radius = 10 ** (-psnr / 20) * math.sqrt(values)
    alpha = radius / 4 if refine else default_alpha(radius, attack.steps)
    return replace(attack, eps=radius, alpha=alpha, norm="l2", linf_cap=attack.eps)


def describe_budget(name: str, cap: float, steps: int, psnr: float | None) -> str:
    """How the CLI names a budget: ``pgd eps=8.0/255, 20 steps`` or, with a PSNR floor,
    ``pgd, PSNR >= 33 dB over the protected pixels, max change 16.0/255, 20 steps``."""
    if psnr is None:
        return f"{name} eps={cap * 255:.1f}/255, {steps} steps"
    return (f"{name}, PSNR >= {psnr:g} dB over the protected pixels, "
            f"max change {cap * 255:.1f}/255, {steps} steps")


def _accepts(name: str, option: str) -> bool:
    return option in inspect.signature(attack_info(name).factory).parameters


def resolve_budget(
    strength: str = DEFAULT_STRENGTH,
    *,
    attack: str | Attack | None = None,
    eps: float | None = None,
    steps: int | None = None,
    alpha: float | None = None,
    eot: bool | None = None,
    universal: bool = False,
    psnr: float | None = None,
    objective: str | None = None,
    perceptual: bool | None = None,
    crop_jitter: bool | None = None,
    crops: str | None = None,
    protector: bool = False,
) -> Budget:
    """Merge a strength preset with explicit overrides.

    Args:
        strength: ``"low"``, ``"mid"`` or ``"high"`` (see the module table).
        attack: attack name or a ready :class:`~attacks.Attack`; a ready attack
            keeps its own ``eps``/``steps``/``alpha`` (the preset then only sets EOT,
            and a PSNR floor applies only when ``psnr`` is given, with the attack's
            ``eps`` as the cap).
        eps: the largest change per pixel (the L-inf budget, or the cap under a
            PSNR floor). ``steps``, ``alpha``: override the preset's values
            (``steps`` is not passed to an attack that takes none, such as ``fgsm``;
            ``alpha`` is for L-inf budgets only).
        eot: override the preset's EOT on/off.
        universal: starting from a universal perturbation: ``steps`` defaults to
            :data:`UNIVERSAL_REFINE_STEPS` and the step to a quarter of the budget.
        psnr: the PSNR floor in dB over the protected pixels; ``None``: the preset's;
            ``0``: none (plain L-inf at ``eps``).
        objective: ``"balanced"``, ``"mean"`` or ``"focused"`` (see
            :attr:`Budget.objective`);
            ``None``: the preset's.
        perceptual: per-pixel caps that follow the texture (PSNR-floor budgets only;
            see :attr:`Budget.perceptual`); ``None``: the preset's.
        crop_jitter: attack through a distribution of crops (see
            :attr:`Budget.crop_jitter`); ``None``: the preset's.
        crops: ``"canonical"`` or ``"family"`` (see :attr:`Budget.crops`); ``None``:
            the preset's.
        protector: the amortized protector makes the perturbation; ``steps`` (default
            :data:`PROTECTOR_REFINE_STEPS`, may be 0) then counts refinement steps of
            a quarter of the budget, as after a universal start
            (:attr:`Budget.refine_steps`). Excludes ``universal``.

    Raises:
        SettingError: unknown strength, a bad attack setting, an ``eps`` under one
            8-bit level, a PSNR floor above :data:`MAX_PSNR_FLOOR` (a
            :class:`~disrupt.errors.DisruptError` and a ``ValueError``).
        attacks.UnknownAttackError: unknown attack name.
    """
    if protector:
        if universal:
            raise SettingError("the amortized protector and a universal perturbation are two "
                               "starting points: use one")
        refine = PROTECTOR_REFINE_STEPS if steps is None else steps
        if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
            raise SettingError(f"refinement steps must be an integer >= 0, got {steps!r}")
        made = resolve_budget(strength, attack=attack, eps=eps, steps=max(1, refine),
                              alpha=alpha, eot=eot, universal=True, psnr=psnr,
                              objective=objective, perceptual=perceptual,
                              crop_jitter=crop_jitter, crops=crops)
        return replace(made, refine_steps=refine)
    try:
        return _resolve_budget(strength, attack, eps, steps, alpha, eot, universal, psnr,
                               objective, perceptual, crop_jitter, crops)
    except SettingError:
        raise
    except ValueError as exc:  # from the attack factories, which cannot import disrupt
        raise SettingError(" ".join(str(exc).split())) from None


def _resolve_budget(strength: str, attack: str | Attack | None, eps: float | None,
                    steps: int | None, alpha: float | None, eot: bool | None, universal: bool,
                    psnr: float | None, objective: str | None,
                    perceptual: bool | None, crop_jitter: bool | None,
                    crops: str | None) -> Budget:
    if strength not in STRENGTHS:
        raise SettingError(f"strength must be one of {', '.join(STRENGTHS)}, got {strength!r}")
    preset = STRENGTHS[strength]
    goal = preset.objective if objective is None else objective
    if goal not in OBJECTIVES:
        raise SettingError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                           f"got {objective!r}")
    shaped = preset.perceptual if perceptual is None else bool(perceptual)
    jitter = preset.crop_jitter if crop_jitter is None else bool(crop_jitter)
    where = preset.crops if crops is None else crops
    if where not in CROPS:
        raise SettingError(f"crops must be {' or '.join(CROPS)}, got {crops!r}")
    use_eot = preset.eot if eot is None else bool(eot)
    if psnr is not None and not (isinstance(psnr, (int, float)) and math.isfinite(psnr)
                                 and 0 <= psnr <= MAX_PSNR_FLOOR):
        raise SettingError(
            f"psnr must be 0 (no floor) or a floor in dB up to {MAX_PSNR_FLOOR:.1f} (a change "
            f"of one 8-bit level on every pixel; above it rounding to 8 bits erases most of "
            f"the perturbation), got {psnr!r}")
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps)
                                and MIN_EPS <= eps <= 1):
        raise SettingError(f"eps must be from 1/255 (one 8-bit level: a smaller change is "
                           f"lost when the image is saved) to 1, got {eps!r}"
                           + (f" ({eps * 255:.2f}/255)" if isinstance(eps, float) else ""))
    if isinstance(attack, Attack):
        floor = psnr or None
        if floor is not None and attack.norm != "linf":
            raise SettingError("a PSNR floor needs an L-inf attack (its eps becomes the cap)")
        return Budget(attack, use_eot, preset.eot_samples, strength, floor, universal, goal,
                      shaped, jitter, where)
    floor = preset.psnr if psnr is None else (psnr or None)
    if floor is not None and alpha is not None:
        raise SettingError("alpha applies to L-inf budgets only; pass psnr=0 (--psnr 0) to set it")
    name = attack or preset.attack
    budget = preset.eps if eps is None else eps
    if not (isinstance(budget, (int, float)) and math.isfinite(budget)):
        raise SettingError(f"eps must be a number, got {budget!r}")
    n = steps if steps is not None else (UNIVERSAL_REFINE_STEPS if universal else preset.steps)
    a = alpha if alpha is not None else (budget / 4 if universal else None)
    if not _accepts(name, "steps"):
        if steps is not None:
            raise SettingError(f"attack {name!r} takes no 'steps' option (got {steps!r})")
        n_opt: int | None = None
    else:
        n_opt = n
    if a is not None and not _accepts(name, "alpha"):
        if alpha is not None:
            raise SettingError(f"attack {name!r} takes no 'alpha' option (got {alpha!r})")
        a = None
    return Budget(create_attack(name, eps=float(budget), steps=n_opt, alpha=a), use_eot,
                  preset.eot_samples, strength, floor, universal, goal, shaped, jitter, where)

