"""Confidence intervals for rates measured on few photos.

A disrupted rate from a few dozen (image, face, condition) outputs is uncertain by
tens of percent; the Wilson score interval stays inside ``[0, 1]`` and keeps a sane
width at 0% and 100%, where the normal approximation collapses to a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["wilson"]


def wilson(hits: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval ``(low, high)`` in ``[0, 1]`` of a rate from 0/1
    outcomes ``hits``; ``z = 1.96`` gives 95%. No outcomes: ``(0.0, 1.0)``."""
    n = len(hits)
    if n == 0:
        return (0.0, 1.0)
    p = sum(hits) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
