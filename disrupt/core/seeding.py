"""Seeded blocks of torch's global random state, and checking seeds and devices.

Stochastic generators (pix2pix's dropout, train-mode BatchNorm) draw from torch's
process-wide RNG, which no per-call ``torch.Generator`` can reach. :func:`seeded`
therefore seeds that RNG inside a block, restores it afterwards, and holds one
process-wide lock while it does: two threads calling :func:`disrupt.protect` at once
would otherwise interleave their draws and get results that depend on timing. The
price is that seeded blocks of different threads run one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from disrupt.errors import SettingError

__all__ = ["MAX_SEED", "check_seed", "move_to", "resolve_device", "seeded"]

#: Largest seed torch accepts as a 64-bit unsigned integer (``torch.manual_seed``).
MAX_SEED = 2**64 - 1

# Re-entrant: a seeded block may call code that opens another one (protect -> measure).
_GLOBAL_RNG_LOCK = threading.RLock()


def check_seed(seed: int) -> int:
    """``seed`` if torch can use it; :class:`~disrupt.errors.SettingError` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise SettingError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with torch's global RNG seeded by ``seed``; restore it afterwards.

    Also seeds (and restores) the CUDA RNG of ``device`` when it is a CUDA device.
    Holds a process-wide lock, so blocks in different threads do not interleave.
    """
    dev = torch.device(device)
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(check_seed(seed))
        yield


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` (a GPU when there is one, else the CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"mps"`` -> a device that exists here.

    Raises :class:`~disrupt.errors.SettingError` for an unknown or absent device."""
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError:
        raise SettingError(f"device {name!r} is not a device name (use auto, cpu, cuda, "
                         "cuda:N or mps)") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SettingError(f"device {name!r}: no CUDA GPU is available here (use cpu or auto)")
        if dev.index is not None and dev.index >= count:
            raise SettingError(f"device {name!r}: only {count} CUDA GPU(s) here")
        return dev
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SettingError(f"device {name!r}: Apple MPS is not available here (use cpu)")
        return dev
    raise SettingError(f"device {name!r} is not supported (use auto, cpu, cuda, cuda:N or mps)")


def move_to(modules: Iterable[object], device: torch.device) -> None:
    """Move every ``nn.Module`` among ``modules`` (targets) to ``device``, in place."""
    for m in modules:
        if isinstance(m, nn.Module):
            m.to(device)
