"""Small helpers shared by the target files that reproduce official GAN code.

Checkpoint-key patches that several official loaders perform implicitly, and a
seeded initialisation for the tiny test variants that leaves torch's global RNG
untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

from targets.base import Condition
from targets.checkpoints import (
    CheckpointError,
    load_state_dict_strict,
    read_checkpoint,
    strip_prefix,
)

ModuleT = TypeVar("ModuleT", bound=nn.Module)
#: A checkpoint-key patch: official state dict in, our module's state dict out.
Remap = Callable[[Mapping[str, object]], dict[str, object]]

_RUNNING_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")


def strip_module_prefix(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Drop the ``module.`` prefix ``nn.DataParallel`` adds, where every key has it."""
    return dict(strip_prefix(cast("Mapping[str, Tensor]", state_dict), "module."))


def fill_num_batches_tracked(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Add ``num_batches_tracked = 0`` beside each ``running_mean`` that has none.

    Files saved with PyTorch < 0.4.1 lack the buffer; PyTorch's own BatchNorm loader
    fills it in the same way when the state dict carries old version metadata. The
    value only matters for ``momentum=None`` (cumulative averaging), which no target
    here uses.
    """
    out = dict(state_dict)
    for key in state_dict:
        if key.endswith(".running_mean"):
            nbt = key[: -len(".running_mean")] + ".num_batches_tracked"
            out.setdefault(nbt, torch.tensor(0, dtype=torch.long))
    return out


def drop_running_stats(state_dict: Mapping[str, object]) -> dict[str, object]:
    """Remove ``running_mean`` / ``running_var`` / ``num_batches_tracked`` entries.

    For networks whose norm layers keep no running statistics (InstanceNorm with
    ``track_running_stats=False``): files saved with PyTorch 0.4.0 carry these
    entries anyway, and the official loaders drop them before a strict load.
    """
    return {k: v for k, v in state_dict.items() if not k.endswith(_RUNNING_SUFFIXES)}


def seeded_init_(module: ModuleT, seed: int = 0) -> ModuleT:
    """Fill every parameter and buffer of ``module`` from ``torch.Generator(seed)``.

    Convolution weights are normal with a He-style fan-in scale (so activations keep
    their size through deep stacks and tiny test models give non-trivial outputs),
    biases small normal, norm scales ``1 + noise``, running statistics reset to
    mean 0 / variance 1. Works on modules built on the ``meta`` device and moved with
    ``to_empty``; torch's global RNG is not consumed. Returns ``module``.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal_(t: Tensor, std: float, mean: float = 0.0) -> None:
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float32)
        t.copy_((noise * std + mean).to(dtype=t.dtype, device=t.device))

    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                w = sub.weight
                if isinstance(sub, nn.ConvTranspose2d):
                    # weight (in, out, kh, kw); each output sees in*kh*kw/stride^2 inputs
                    kh, kw = w.shape[-2:]
                    fan_in = w.shape[0] * kh * kw / (sub.stride[0] * sub.stride[1])
                else:
                    fan_in = w[0].numel()
                normal_(w, math.sqrt(2.0 / max(fan_in, 1.0)))
                if sub.bias is not None:
                    normal_(sub.bias, 0.05)
            elif isinstance(sub, nn.modules.batchnorm._NormBase):
                if sub.affine:
                    normal_(sub.weight, 0.1, mean=1.0)
                    normal_(sub.bias, 0.1)
                if sub.track_running_stats:
                    sub.reset_running_stats()
    return module


def load_checkpoint_into(module: nn.Module, path: Path, remap: Remap) -> None:
    """Read ``path`` safely, remap it, and load it strictly (errors name file and keys)."""
    raw = read_checkpoint(path)
    try:
        sd = remap(raw)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    load_state_dict_strict(module, sd, path)


def one_hot_conditions(
    names: Sequence[str], *, offset: int = 0, total: int | None = None,
    suffix: Sequence[float] = (),
) -> tuple[Condition, ...]:
    """Condition ``k`` = one-hot at ``offset + k`` in a ``total``-long vector, then ``suffix``."""
    size = total if total is not None else offset + len(names)
    conditions = []
    for k, name in enumerate(names):
        v = torch.zeros(size + len(suffix))
        v[offset + k] = 1.0
        if suffix:
            v[size:] = torch.tensor(list(suffix))
        conditions.append(Condition(name, v))
    return tuple(conditions)


def require_weights(name: str, weights: Path | None) -> Path:
    """``weights`` or a :class:`CheckpointError` saying the target needs a checkpoint."""
    if weights is None:
        raise CheckpointError(
            f"target {name!r} needs its checkpoint: pass weights=PATH (CLI: --weights PATH)"
        )
    return weights
