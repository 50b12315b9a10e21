"""The target contract: what an attack may call, and the generic adapter that fulfils it.

Image convention at every public edge: float32 RGB tensors of shape ``(B, 3, H, W)``
with values in ``[0, 1]``. A target converts to its generator's native range
(most GANs use ``[-1, 1]``) and native size inside, differentiably, and returns its
output in ``[0, 1]`` at the generator's own resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Mode = Literal["train", "eval"]


@dataclass(frozen=True)
class Condition:
    """One thing a conditional generator can be asked to do.

    ``name`` is for people (``"Blond_Hair"``); ``vector`` is what the generator is fed,
    shape ``(c,)`` in the generator's own convention, or ``None`` for an
    unconditional generator.
    """

    name: str
    vector: Tensor | None = None


UNCONDITIONAL: tuple[Condition, ...] = (Condition("output", None),)


@runtime_checkable
class Target(Protocol):
    """A generator an attack can be aimed at.

    ``__call__(x, condition)``: ``x`` is ``(B, 3, H, W)`` in ``[0, 1]`` at any ``H, W``;
    ``condition`` is ``None`` or a ``(B, c)`` / ``(c,)`` tensor of condition vectors
    (one of ``conditions[k].vector``, possibly stacked). Returns ``(B, 3, h, w)`` in
    ``[0, 1]`` at the generator's resolution, differentiable in ``x``.

    ``batch_independent``: ``True`` when each image's output depends on that image
    alone, so several images (or crops) may share one call; ``False`` for generators
    whose outputs mix a batch (BatchNorm with batch statistics, as pix2pix runs).
    """

    name: str
    input_size: tuple[int, int] | None
    conditions: Sequence[Condition]
    batch_independent: bool

    def __call__(self, x: Tensor, condition: Tensor | None) -> Tensor: ...


CallAdapter = Callable[[nn.Module, Tensor, "Tensor | None"], Tensor]


def _default_call(generator: nn.Module, x: Tensor, condition: Tensor | None) -> Tensor:
    out = generator(x) if condition is None else generator(x, condition)
    # Some research generators return (image, extras); the image comes first.
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def freeze_for_inference(module: nn.Module, mode: Mode) -> nn.Module:
    """Freeze parameters and set ``mode`` without letting forward passes mutate buffers.

    In train mode BatchNorm/InstanceNorm with running statistics normalise with
    batch statistics (the official test-time behaviour of StarGAN and pix2pix) but
    would also update their running buffers on every call; momentum 0 keeps the
    buffers fixed so repeated calls, and therefore attacks, stay deterministic.
    BatchNorm would still count calls in ``num_batches_tracked``: it stops tracking
    instead (same batch-statistics output, buffers kept for state_dict and eval).
    """
    module.requires_grad_(False)
    module.train(mode == "train")
    if mode == "train":
        for sub in module.modules():
            if isinstance(sub, nn.modules.batchnorm._NormBase) and sub.momentum is not None:
                sub.momentum = 0.0
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                sub.track_running_stats = False
    return module


class GeneratorTarget(nn.Module):
    """Wrap any generator ``nn.Module`` as a :class:`Target`.

    Args:
        name: registry-style name used in reports.
        generator: the network. Its parameters are frozen here.
        value_range: the generator's native pixel range, e.g. ``(-1, 1)``.
        input_size: ``(h, w)`` the generator expects; inputs are resized to it
            differentiably (bilinear, antialiased). ``None`` feeds the input as is.
        conditions: what the generator can be asked; ``UNCONDITIONAL`` when it
            takes no condition.
        call: ``call(generator, x_native, condition) -> y_native`` for generators with
            another calling convention.
        mode: ``"train"`` or ``"eval"``: the mode the model's official test script uses.
        batch_independent: ``False`` when outputs for one image depend on the
            others in the batch (BatchNorm in train mode).
    """

    def __init__(
        self,
        name: str,
        generator: nn.Module,
        *,
        value_range: tuple[float, float] = (-1.0, 1.0),
        input_size: tuple[int, int] | None = None,
        conditions: Sequence[Condition] = UNCONDITIONAL,
        call: CallAdapter | None = None,
        mode: Mode = "eval",
        batch_independent: bool = True,
    ) -> None:
        super().__init__()
        if value_range[1] <= value_range[0]:
            raise ValueError(f"value_range must be increasing, got {value_range}")
        if not conditions:
            raise ValueError("conditions must not be empty; use UNCONDITIONAL")
        self.name = name
        self.generator = freeze_for_inference(generator, mode)
        self.value_range = value_range
        self.input_size = input_size
        self.conditions: Sequence[Condition] = tuple(conditions)
        self.call = call or _default_call
        self.mode: Mode = mode
        # BatchNorm in train mode mixes the images of a batch.
        self.batch_independent = batch_independent and not (
            mode == "train" and _has_batchnorm(generator)
        )

    @property
    def device(self) -> torch.device:
        for p in self.generator.parameters():
            return p.device
        return torch.device("cpu")

    def train(self, mode: bool = True) -> GeneratorTarget:
        # The generator's mode is part of the target's definition; nn.Module.train()
        # called by a container must not silently change it.
        return self

    def resize_input(self, x: Tensor) -> Tensor:
        """``(B,3,H,W)`` -> ``(B,3,h,w)`` at ``input_size`` (bilinear, antialiased).

        Objectives call this once before repeating a batch over conditions, so a large
        photo is shrunk once per step rather than once per condition; the forward
        pass then sees the right size and does not resize again.
        """
        if self.input_size is not None and tuple(x.shape[-2:]) != tuple(self.input_size):
            # Interpolation weights can overshoot [0, 1] by float rounding; clamp it back.
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False,
                              antialias=True).clamp(0.0, 1.0)
        return x

    def to_native(self, x: Tensor) -> Tensor:
        """``(B,3,H,W)`` in ``[0,1]`` -> generator input: resized and rescaled."""
        lo, hi = self.value_range
        return self.resize_input(x) * (hi - lo) + lo

    def from_native(self, y: Tensor) -> Tensor:
        """Generator output in its native range -> ``[0, 1]``."""
        lo, hi = self.value_range
        return (y - lo) / (hi - lo)

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.name}: expected (B,3,H,W) input, got {tuple(x.shape)}")
        if condition is not None:
            condition = condition.to(device=x.device, dtype=x.dtype)
            if condition.ndim == 1:
                condition = condition.expand(x.shape[0], -1)
        y = self.call(self.generator, self.to_native(x), condition)
        return self.from_native(y)


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@dataclass(frozen=True)
class WeightsSpec:
    """Where a target's weights come from and what they are, as data.

    ``sha256`` is of the file; ``None`` for user-supplied official checkpoints whose
    hash varies by release. ``value_range`` is the generator's native range.
    """

    file: str
    sha256: str | None
    input_size: tuple[int, int]
    value_range: tuple[float, float] = (-1.0, 1.0)
    licence: str = "unknown"
    provenance: str = ""
    extra: dict[str, str] = field(default_factory=dict)
