"""``benchmarks/generator_robustness.py``: its gains and the Ruiz protocol on generators
whose answers are known (a pass-through and linear contrast amplifiers)."""

from __future__ import annotations

from types import ModuleType

import pytest
import torch
from torch import Tensor, nn

from targets.base import GeneratorTarget
from tests._shared import benchmark_module


@pytest.fixture(scope="module")
def study() -> ModuleType:
    return benchmark_module("generator_robustness")


class Contrast(nn.Module):
    """``y = 0.5 + gain * (x - 0.5)`` on the ``[0, 1]`` scale: every change amplified ``gain``x."""

    def __init__(self, gain: float) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: Tensor) -> Tensor:
        return 0.5 + self.gain * (x - 0.5)


def _faces() -> Tensor:
    # Mid-grey images with texture, far enough from 0 and 1 that nothing clamps.
    g = torch.Generator().manual_seed(0)
    return 0.45 + 0.1 * torch.rand(4, 3, 16, 16, generator=g)


def _target(gain: float) -> GeneratorTarget:
    return GeneratorTarget(f"contrast{gain:g}", Contrast(gain), value_range=(0.0, 1.0))


def test_a_pass_through_has_unit_gains_and_is_not_disrupted(study: ModuleType) -> None:
    row = study.robustness(_target(1.0), _faces())
    assert row["noise_gain"] == pytest.approx(1.0, abs=1e-4)
    assert row["adversarial_gain"] == pytest.approx(1.0, abs=1e-4)
    assert row["output_detail"] == pytest.approx(1.0, abs=1e-4)
    assert row["disrupted"] == 0.0


@pytest.mark.parametrize(("gain", "disrupted"), [(2.0, 0.0), (6.0, 1.0)])
def test_disruption_follows_the_gain(study: ModuleType, gain: float, disrupted: float) -> None:
    # At eps 6.4/255 a pass-through moves the output by Ruiz MSE ~0.0025; Ruiz's 0.05
    # needs about a 4.5x amplification: 2x stays under it, 6x crosses it on every image.
    row = study.robustness(_target(gain), _faces())
    assert row["adversarial_gain"] == pytest.approx(gain, rel=1e-3)
    assert row["noise_gain"] == pytest.approx(gain, rel=1e-3)
    assert row["output_detail"] == pytest.approx(gain, rel=1e-3)
    assert row["disrupted"] == disrupted
    # The attack used its whole budget: 10 steps of 0.005 reach the 0.025 bound.
    assert row["mean_ruiz_mse"] > 4 * (gain * 0.9 * 6 / 255) ** 2
