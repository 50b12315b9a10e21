"""Measure how much a perturbation disrupts each target, per condition.

Everything here takes images as float tensors ``(B, 3, H, W)`` in ``[0, 1]`` and
measures what it is given: callers pass the 8-bit image the user actually gets
(quantized, or reloaded from the saved file), never the attack's float tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from disrupt.core.objectives import OverConditions
from disrupt.core.seeding import seeded
from disrupt.eval.metrics import RUIZ_THRESHOLD, output_distortion
from targets.base import Target


@dataclass(frozen=True)
class Disruption:
    """Distortion of one target's output for one condition, for one image.

    ``ruiz_mse`` is Ruiz et al.'s "L2 error": MSE between ``G(x_adv)`` and ``G(x)`` on
    the ``[-1, 1]`` scale; ``disrupted`` is ``ruiz_mse > threshold``. ``l1`` is on
    ``[0, 1]``; ``psnr`` (dB) and ``ssim`` compare the two outputs.
    """

    target: str
    condition: str
    ruiz_mse: float
    disrupted: bool
    l1: float
    psnr: float
    ssim: float
    threshold: float = RUIZ_THRESHOLD

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@torch.no_grad()
def target_outputs(target: Target, x: Tensor) -> Tensor:
    """All condition outputs of ``target`` for ``x`` ``(B,3,H,W)``: ``(K, B, 3, h, w)`` in [0,1].

    Runs the conditions the same way the attack's objectives do (batched where the
    target allows it), so what is measured is what was optimised.
    """
    return OverConditions(target, x, None).outputs(x)


@torch.no_grad()
def measure_disruption(
    targets: Sequence[Target],
    x_clean: Tensor,
    x_adv: Tensor,
    *,
    threshold: float = RUIZ_THRESHOLD,
    seed: int = 0,
) -> list[list[Disruption]]:
    """Disruption of every target and condition, per image.

    Args:
        targets: the generators to evaluate.
        x_clean: ``(B, 3, H, W)`` original images in ``[0, 1]``.
        x_adv: ``(B, 3, H, W)`` protected images in ``[0, 1]`` (the saved 8-bit ones).
        threshold: Ruiz et al.'s success threshold on the ``[-1, 1]`` MSE.
        seed: seeds stochastic generators (pix2pix dropout) identically for both
            passes, so only the perturbation differs.

    Returns:
        ``result[b]`` lists one :class:`Disruption` per (target, condition) for image ``b``.
    """
    if x_clean.shape != x_adv.shape:
        raise ValueError(f"clean {tuple(x_clean.shape)} and protected {tuple(x_adv.shape)} differ")
    rows: list[list[Disruption]] = [[] for _ in range(x_clean.shape[0])]
    for target in targets:
        with seeded(seed, x_clean.device):
            y_clean = target_outputs(target, x_clean)
        with seeded(seed, x_adv.device):
            y_adv = target_outputs(target, x_adv)
        for k, cond in enumerate(target.conditions):
            m = output_distortion(y_adv[k], y_clean[k])
            for b in range(x_clean.shape[0]):
                rows[b].append(
                    Disruption(
                        target=target.name,
                        condition=cond.name,
                        ruiz_mse=float(m["ruiz_mse"][b]),
                        disrupted=bool(float(m["ruiz_mse"][b]) > threshold),
                        l1=float(m["l1"][b]),
                        psnr=float(m["psnr"][b]),
                        ssim=float(m["ssim"][b]),
                        threshold=threshold,
                    )
                )
    return rows


def disrupted_share(rows: Sequence[Sequence[Disruption]], names: Sequence[str]) -> dict[str, float]:
    """Per target name, the share of its (image, condition) outputs disrupted in
    :func:`measure_disruption`'s ``rows`` (0 for a name with no outputs)."""
    out: dict[str, float] = {}
    for name in names:
        hits = [d.disrupted for row in rows for d in row if d.target == name]
        out[name] = sum(hits) / max(1, len(hits))
    return out
