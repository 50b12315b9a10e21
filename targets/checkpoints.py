"""Safe checkpoint loading with loud key checks.

Only two formats are read, both without executing code from the file:
safetensors, and ``torch.save`` files through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

_MAX_KEYS_SHOWN = 5


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable, or does not fit the network."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> dict[str, object]:
    """Read a checkpoint file into a dict, safely.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)`` on the CPU. Raises :class:`CheckpointError`
    naming the file when it is missing, empty or not a checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoding failure means the same thing to the user
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(exc)})") from exc
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(loaded).__name__}")
    return dict(loaded)


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Drop ``prefix`` (e.g. ``"module."`` from DataParallel) where every key has it."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = len(keys) - _MAX_KEYS_SHOWN
    return shown + (f" (+{more} more)" if more > 0 else "")


def load_state_dict_strict(
    module: nn.Module, state_dict: Mapping[str, object], source: str | Path
) -> None:
    """Load ``state_dict`` into ``module``; any missing, unexpected or misshapen key is an error.

    The error names the file and the offending keys, so a user who passed the
    wrong checkpoint learns which model it belongs to rather than getting noise.
    """
    expected = module.state_dict()
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, Tensor)}
    not_tensors = sorted(k for k in state_dict if k not in tensors)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected)) + not_tensors
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    if not problems:
        wrong = [
            f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
            for k, v in expected.items()
            if tuple(tensors[k].shape) != tuple(v.shape)
        ]
        if wrong:
            problems.append(f"shape mismatch: {_names(wrong)}")
    if problems:
        detail = "; ".join(problems)
        raise CheckpointError(f"{source}: checkpoint does not fit this model; {detail}")
    module.load_state_dict({k: tensors[k] for k in expected}, strict=True)


def _reason(exc: Exception) -> str:
    """A short, whole-sentence reason for a failed load (torch's own messages run to
    several paragraphs of advice that does not apply to a user's file)."""
    text = " ".join(str(exc).split())
    if "Weights only load failed" in text or "weights_only" in text:
        return ("it holds pickled objects other than tensors; it is refused because "
                "loading them could run code")
    if not text:
        return type(exc).__name__
    first = text.split(". ")[0].rstrip(".")
    return first if len(first) <= 160 else first[:157].rsplit(" ", 1)[0] + "..."
