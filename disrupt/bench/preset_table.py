"""The strength presets measured on a photo: visibility and disruption per preset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from disrupt.core.budget import STRENGTHS


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
