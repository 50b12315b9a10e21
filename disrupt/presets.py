"""Strength presets: ``protect(..., strength="low" | "mid" | "high")`` and ``--strength``.

Each preset is a documented budget. Explicit ``eps``, ``steps``, ``alpha``,
``attack`` or ``eot`` override the preset's value for that field only.

======== ======== ====== ====== ========================================== ==========
strength eps      attack steps  EOT (expectation over transformation)      samples
======== ======== ====== ====== ========================================== ==========
low      4/255    pgd    10     off                                        -
mid      8/255    pgd    20     JPEG 50-95 or the photo as saved, drawn    1 per step
                                per step, applied to the photo before the
                                face crops (:data:`~disrupt.robust.JPEG_EOT_TRANSFORMS`)
high     12/255   pgd    40     as mid                                     2 per step
======== ======== ====== ====== ========================================== ==========

``mid`` is the default. With ``universal=...`` the attack starts from the universal
perturbation and, unless told otherwise, refines it for
:data:`UNIVERSAL_REFINE_STEPS` steps of ``eps / 4``.

Measured perceptibility on ``examples/astronaut.png`` (256x256; NASA portrait,
public domain), on the 8-bit protected image, seed 0, targets ``stargan.tiny`` and
``attgan.tiny`` (the bundled models were not trained yet; with L-inf PGD the
visibility is set by the budget far more than by the targets). "faces" is the
default here (the face is found and only the crops around it are perturbed: 15% of
the pixels); "whole" is ``faces=False``. PSNR (dB) and SSIM are over the whole
photo; the max change is the budget, reached in both modes.

======== ============== ============== ==========
strength faces          whole          max change
         PSNR / SSIM    PSNR / SSIM    (/255)
======== ============== ============== ==========
low      44.7 / 0.992   36.8 / 0.940   4
mid      40.0 / 0.987   32.3 / 0.913   8
high     35.7 / 0.974   28.1 / 0.866   12
======== ============== ============== ==========

Re-measure (and print this table) with::

    python -m disrupt.presets [--image PHOTO] [--target NAME ...]
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attacks import Attack, attack_info, create_attack

__all__ = [
    "DEFAULT_STRENGTH",
    "STRENGTHS",
    "UNIVERSAL_REFINE_STEPS",
    "Budget",
    "Strength",
    "StrengthPreset",
    "measure_presets",
    "resolve_budget",
]

Strength = Literal["low", "mid", "high"]
DEFAULT_STRENGTH: Strength = "mid"
#: Refinement steps after starting from a universal perturbation (unless ``steps`` is given).
UNIVERSAL_REFINE_STEPS = 5


@dataclass(frozen=True)
class StrengthPreset:
    """One named budget: L-inf ``eps`` in ``[0, 1]`` units, attack, steps, EOT."""

    name: str
    eps: float
    attack: str
    steps: int
    eot: bool
    eot_samples: int
    summary: str


STRENGTHS: dict[str, StrengthPreset] = {
    "low": StrengthPreset("low", 4 / 255, "pgd", 10, False, 1,
                          "eps 4/255, PGD 10 steps, no EOT: least visible, not robust"),
    "mid": StrengthPreset("mid", 8 / 255, "pgd", 20, True, 1,
                          "eps 8/255, PGD 20 steps, EOT over JPEG 50-95"),
    "high": StrengthPreset("high", 12 / 255, "pgd", 40, True, 2,
                           "eps 12/255, PGD 40 steps, EOT with 2 draws per step"),
}


@dataclass(frozen=True)
class Budget:
    """What :func:`resolve_budget` settled on: the attack and whether to use EOT."""

    attack: Attack
    eot: bool
    eot_samples: int
    strength: str


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
) -> Budget:
    """Merge a strength preset with explicit overrides.

    Args:
        strength: ``"low"``, ``"mid"`` or ``"high"`` (see the module table).
        attack: attack name or a ready :class:`~attacks.Attack`; a ready attack
            keeps its own ``eps``/``steps``/``alpha`` (the preset then only sets EOT).
        eps, steps, alpha: override the preset's values (``steps`` is not passed to
            an attack that takes none, such as ``fgsm``).
        eot: override the preset's EOT on/off.
        universal: starting from a universal perturbation: ``steps`` defaults to
            :data:`UNIVERSAL_REFINE_STEPS` and ``alpha`` to ``eps / 4``.

    Raises:
        ValueError: unknown strength, or a bad attack setting.
        attacks.UnknownAttackError: unknown attack name.
    """
    if strength not in STRENGTHS:
        raise ValueError(f"strength must be one of {', '.join(STRENGTHS)}, got {strength!r}")
    preset = STRENGTHS[strength]
    use_eot = preset.eot if eot is None else bool(eot)
    if isinstance(attack, Attack):
        return Budget(attack, use_eot, preset.eot_samples, strength)
    name = attack or preset.attack
    budget = preset.eps if eps is None else eps
    if not (isinstance(budget, (int, float)) and math.isfinite(budget)):
        raise ValueError(f"eps must be a number, got {budget!r}")
    n = steps if steps is not None else (UNIVERSAL_REFINE_STEPS if universal else preset.steps)
    a = alpha if alpha is not None else (budget / 4 if universal else None)
    if not _accepts(name, "steps"):
        if steps is not None:
            raise ValueError(f"attack {name!r} takes no 'steps' option (got {steps!r})")
        n_opt: int | None = None
    else:
        n_opt = n
    if a is not None and not _accepts(name, "alpha"):
        if alpha is not None:
            raise ValueError(f"attack {name!r} takes no 'alpha' option (got {alpha!r})")
        a = None
    return Budget(create_attack(name, eps=float(budget), steps=n_opt, alpha=a), use_eot,
                  preset.eot_samples, strength)


def measure_presets(
    image: str | Path = "examples/astronaut.png",
    targets: Sequence[str] = ("stargan.tiny", "attgan.tiny"),
    *,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Protect ``image`` at every strength, with and without faces; measure visibility.

    Returns one row per (strength, faces) with ``psnr`` (dB), ``ssim``, ``linf_255``,
    ``seconds``, ``face_status`` and the disrupted fraction, all measured on the
    8-bit protected image as :func:`~disrupt.api.protect` returns it.
    """
    from disrupt.api import protect

    rows: list[dict[str, Any]] = []
    for strength in STRENGTHS:
        for faces in (None, False):
            r = protect(image, targets=list(targets), strength=strength, faces=faces, seed=seed)
            rows.append({
                "strength": strength,
                "faces": "auto" if faces is None else "off",
                "face_status": r.face_status,
                "psnr": r.perceptibility["psnr"],
                "ssim": r.perceptibility["ssim"],
                "linf_255": r.perceptibility["linf_255"],
                "disrupted_fraction": r.disrupted_fraction,
                "seconds": r.seconds,
            })
    return rows


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`measure_presets` rows."""
    lines = [f"{'strength':<8} {'faces':<5} {'status':<12} {'PSNR dB':>8} {'SSIM':>6} "
             f"{'max/255':>7} {'disrupted':>9} {'seconds':>7}"]
    for r in rows:
        lines.append(
            f"{r['strength']:<8} {r['faces']:<5} {r['face_status']:<12} {r['psnr']:>8.2f} "
            f"{r['ssim']:>6.4f} {r['linf_255']:>7.0f} {r['disrupted_fraction']:>9.2f} "
            f"{r['seconds']:>7.1f}"
        )
    return "\n".join(lines)


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Measure the strength presets' visibility.")
    parser.add_argument("--image", default="examples/astronaut.png")
    parser.add_argument("--target", action="append", default=None,
                        help="target name (repeatable); default stargan.tiny, attgan.tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    targets = args.target or ["stargan.tiny", "attgan.tiny"]
    print(f"# image {args.image}, targets {', '.join(targets)}, seed {args.seed}")
    print(format_rows(measure_presets(args.image, targets, seed=args.seed)))


if __name__ == "__main__":
    _main()
