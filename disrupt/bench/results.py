"""What a benchmark run measured: per-cell rows, the whole run, and the aggregates
(rates and means per cell and channel) that the reports print.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from disrupt.bench.cells import Cell
from disrupt.bench.config import (
    BenchConfig,
)

log = logging.getLogger(__name__)


PSNR_CAP = 100.0  # dB reported for identical outputs (PSNR is +inf there)


@dataclass
class CellResult:
    """What one cell measured: per-output ``rows`` and per-image ``images`` records."""

    cell: Cell
    key: str
    rows: list[dict[str, Any]]
    images: list[dict[str, Any]]
    seconds: float
    cached: bool = False
    folder: Path | None = None


@dataclass
class BenchResult:
    """Everything a run produced. ``rows``: one per (cell, evaluated target, channel,
    image, attacked condition, evaluated condition); ``images``: one per (cell, image,
    attacked condition) with perceptibility and seconds; ``aggregates``: one per
    (cell, evaluated target, channel). ``files`` maps a kind (``json``, ``csv``, ...)
    to the path written, once :func:`disrupt.bench.report.write_report` ran."""

    config: BenchConfig
    environment: dict[str, Any]
    cells: list[CellResult]
    aggregates: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    out: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [r for c in self.cells for r in c.rows]

    @property
    def images(self) -> list[dict[str, Any]]:
        return [r for c in self.cells for r in c.images]

    @property
    def skipped(self) -> int:
        """Cells loaded from the cache instead of run."""
        return sum(c.cached for c in self.cells)


def _finite(value: float) -> float:
    return PSNR_CAP if math.isinf(value) and value > 0 else min(value, PSNR_CAP)


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def aggregate(cells: Sequence[CellResult]) -> list[dict[str, Any]]:
    """Means per (cell, evaluated target, channel); fractions as numbers in [0, 1]."""
    out: list[dict[str, Any]] = []
    for res in cells:
        per_image = res.images
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in res.rows:
            groups.setdefault((row["evaluated_on"], row["channel"]), []).append(row)
        for (evaluated_on, channel), rows in groups.items():
            judged = [r for r in rows if r["edit_success_clean"] is not None]
            worked = [r for r in judged if r["edit_success_clean"]]
            out.append({
                **res.cell.to_dict(),
                "cell": res.key,
                "evaluated_on": evaluated_on,
                "transfer": evaluated_on != res.cell.target,
                "channel": channel,
                "n": len(rows),
                "images": len({r["image"] for r in rows}),
                "ruiz_mse": _mean(r["ruiz_mse"] for r in rows),
                "disrupted_fraction": _mean(float(r["disrupted"]) for r in rows),
                "l1": _mean(r["l1"] for r in rows),
                "output_psnr": _mean(r["psnr"] for r in rows),
                "output_ssim": _mean(r["ssim"] for r in rows),
                "image_psnr": _mean(r["image_psnr"] for r in per_image),
                "image_ssim": _mean(r["image_ssim"] for r in per_image),
                "image_linf_255": max((r["image_linf_255"] for r in per_image), default=None),
                "seconds_per_image": _mean(r["seconds"] for r in per_image),
                "semantic_n": len(judged),
                "edit_success_clean": _mean(float(r["edit_success_clean"]) for r in judged),
                "edit_success_protected": _mean(
                    float(r["edit_success_protected"]) for r in judged),
                "edit_blocked_fraction": _mean(
                    float(not r["edit_success_protected"]) for r in worked),
                "threshold": rows[0]["threshold"],
            })
    return out
