"""Tiny seeded targets and images shared by the attack and objective tests (CPU, ms each)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from targets.base import UNCONDITIONAL, Condition, GeneratorTarget

# Tiny tensors: threading only adds overhead, and far more on a shared machine.
torch.set_num_threads(1)

NUM_CONDITIONS = 3
SIZE = (32, 32)


class TinyStarGAN(nn.Module):
    """conv -> norm -> ReLU -> conv -> tanh; condition vectors tiled and concatenated."""

    def __init__(self, c_dim: int, norm: type[nn.Module] = nn.InstanceNorm2d) -> None:
        super().__init__()
        self.c_dim = c_dim
        self.body = nn.Sequential(
            nn.Conv2d(3 + c_dim, 8, 3, padding=1),
            norm(8, affine=True),
            nn.ReLU(),
            nn.Conv2d(8, 3, 3, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if self.c_dim:
            assert c is not None
            tiled = c.view(c.shape[0], self.c_dim, 1, 1).expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, tiled], dim=1)
        return self.body(x)


def _seeded(c_dim: int, norm: type[nn.Module] = nn.InstanceNorm2d) -> TinyStarGAN:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return TinyStarGAN(c_dim, norm)


def _one_hot_conditions() -> list[Condition]:
    return [Condition(f"c{k}", torch.eye(NUM_CONDITIONS)[k]) for k in range(NUM_CONDITIONS)]


@pytest.fixture
def cond_target() -> GeneratorTarget:
    """StarGAN-like, 3 one-hot conditions, InstanceNorm, 32x32, [-1, 1] native range."""
    return GeneratorTarget(
        "tiny.cond", _seeded(NUM_CONDITIONS), input_size=SIZE, conditions=_one_hot_conditions()
    )


@pytest.fixture
def uncond_target() -> GeneratorTarget:
    """Unconditional version of the same net."""
    return GeneratorTarget("tiny.uncond", _seeded(0), input_size=SIZE, conditions=UNCONDITIONAL)


@pytest.fixture
def bn_target() -> GeneratorTarget:
    """BatchNorm in train mode: not batch-independent (pix2pix-like)."""
    return GeneratorTarget(
        "tiny.bn",
        _seeded(NUM_CONDITIONS, nn.BatchNorm2d),
        input_size=SIZE,
        conditions=_one_hot_conditions(),
        mode="train",
    )


@pytest.fixture
def images() -> Tensor:
    """Two seeded images (2, 3, 32, 32) in [0.1, 0.9], off the 8-bit grid."""
    g = torch.Generator().manual_seed(1)
    return 0.1 + 0.8 * torch.rand(2, 3, *SIZE, generator=g)
