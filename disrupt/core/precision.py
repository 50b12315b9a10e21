"""Reduced-precision attack steps: the objective's forward and backward in bfloat16.

:class:`Autocast` wraps an objective so its generator passes run under
``torch.autocast`` (bfloat16) while the attack itself (the perturbation, the step,
the projection) stays float32. It is on by default on CUDA, where bfloat16 tensor
cores make a step several times cheaper, and off on the CPU: without the AVX-512
bfloat16 instructions (this project's 2-core AMD EPYC has AVX2 only) CPU autocast
was measured far *slower* than float32 (``benchmarks/bench_step_options.py``).

Images are float ``(B, 3, H, W)`` in ``[0, 1]``; scores are float32 ``(B,)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from attacks import Objective

__all__ = ["Autocast", "autocast_default"]


def autocast_default(device: torch.device) -> bool:
    """Whether :func:`disrupt.core.pipeline.run_protection` uses :class:`Autocast` on
    ``device`` when not told: on CUDA only."""
    return device.type == "cuda"


class Autocast:
    """``objective`` evaluated under ``torch.autocast(device, bfloat16)``.

    The scores come back as float32, so the attack's gradient (taken outside, with
    respect to the float32 ``x_adv``) is float32 too.

    Shape:
        ``__call__``: ``(B, 3, H, W)`` in ``[0, 1]`` -> float32 ``(B,)``.
    """

    def __init__(self, objective: Objective, dtype: torch.dtype = torch.bfloat16) -> None:
        self.objective = objective
        self.dtype = dtype

    def __call__(self, x_adv: Tensor) -> Tensor:
        with torch.autocast(device_type=x_adv.device.type, dtype=self.dtype):
            scores = self.objective(x_adv)
        return scores.float()
