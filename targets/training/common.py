"""Small helpers shared by the training scripts: devices, schedules, augmentation, export."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def add_run_options(parser: argparse.ArgumentParser, *, seconds: float, smoke: str) -> None:
    """The options every standalone trainer takes: ``--pack --out --seconds --iters
    --seed --resume --smoke --device`` (``seconds``: the default wall-clock budget;
    ``smoke``: the help of ``--smoke``)."""
    parser.add_argument("--pack", type=Path, required=True, help="face pack .npz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--iters", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--smoke", action="store_true", help=smoke)
    parser.add_argument("--device", default=None)


def setup_device(device: str | None, *, threads: int | None = None) -> torch.device:
    """Pick the device (CUDA when available unless told), enable cuDNN autotune and TF32."""
    if threads is not None:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return dev


def hardware_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores visible, {torch.get_num_threads()} threads)"


class Budget:
    """Stop after ``max_iters`` iterations or ``seconds`` of wall clock, whichever first."""

    def __init__(self, seconds: float, max_iters: int, start_iter: int = 0) -> None:
        self.seconds = float(seconds)
        self.max_iters = int(max_iters)
        self.start = time.monotonic()
        self.iter = start_iter

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self) -> float:
        """Fraction of the budget used, in ``[0, 1]`` (drives the LR schedule)."""
        by_iter = self.iter / max(1, self.max_iters)
        by_time = self.elapsed / self.seconds if self.seconds > 0 else 0.0
        return min(1.0, max(by_iter, by_time))

    def done(self) -> bool:
        return self.iter >= self.max_iters or self.elapsed >= self.seconds


def cosine_lr(base: float, progress: float, warmup: float = 0.02, floor: float = 0.02) -> float:
    """Linear warm-up then cosine decay to ``floor * base``."""
    if progress < warmup:
        return base * max(progress / warmup, 0.05)
    p = (progress - warmup) / max(1e-8, 1 - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def random_affine(
    x: Tensor,
    generator: torch.Generator | None,
    *,
    max_rotate_deg: float = 10.0,
    max_zoom: float = 0.05,
    max_shift: float = 0.05,
    flip: bool = True,
) -> Tensor:
    """Random rotation, zoom, shift and left-right flip of ``(B,C,H,W)``, per image.

    Shift is a fraction of the image size; borders are filled by reflection.
    Runs on the batch's device; ``generator`` must live there too (or be ``None``).
    """
    b = x.shape[0]
    r = torch.rand(b, 4, device=x.device, generator=generator) * 2 - 1
    angle = r[:, 0] * math.radians(max_rotate_deg)
    scale = 1 + r[:, 1] * max_zoom
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos, -sin, r[:, 2] * max_shift * 2], 1),
            torch.stack([sin, cos, r[:, 3] * max_shift * 2], 1),
        ],
        1,
    )
    if flip:
        f = torch.rand(b, device=x.device, generator=generator) < 0.5
        theta[:, :, 0] = torch.where(f[:, None], -theta[:, :, 0], theta[:, :, 0])
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def fp16_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """Contiguous CPU copy of the state dict, floating tensors in fp16 (buffers included)."""
    out = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        out[k] = (v.half() if v.is_floating_point() else v).contiguous()
    return out


def save_fp16_safetensors(tensors: Mapping[str, Tensor], path: Path,
                          metadata: Mapping[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fixed = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu()
             for k, v in tensors.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(fixed, str(tmp), metadata=dict(metadata or {}))
    tmp.replace(path)


#: Largest bundled weights file: bigger state dicts are split into shards.
MAX_SHARD_BYTES = 4 << 20


def save_fp16_shards(tensors: Mapping[str, Tensor], path: Path,
                     metadata: Mapping[str, str] | None = None,
                     max_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """:func:`save_fp16_safetensors`, split into shards of at most ``max_bytes`` each.

    A state dict that fits is written to ``path`` itself; a bigger one to
    ``<stem>-00001-of-0000N.safetensors`` beside it (tensors in key order). A single
    tensor over ``max_bytes`` is cut along its first dimension into parts named by
    :func:`targets.bundled.part_key`, which the loader joins back. Returns the files.
    """
    from targets.bundled import part_key

    pieces: dict[str, Tensor] = {}
    for key, value in tensors.items():
        nbytes = value.numel() * (2 if value.is_floating_point() else value.element_size())
        n = -(-nbytes // max_bytes)  # ceil
        if n > 1 and value.dim() > 0 and value.shape[0] >= n:
            for i, part in enumerate(torch.tensor_split(value, n, dim=0)):
                pieces[part_key(key, i, n)] = part
        else:
            pieces[key] = value
    tensors = pieces
    groups: list[dict[str, Tensor]] = [{}]
    size = 0
    for key, value in tensors.items():
        nbytes = value.numel() * (2 if value.is_floating_point() else value.element_size())
        if groups[-1] and size + nbytes > max_bytes:
            groups.append({})
            size = 0
        groups[-1][key] = value
        size += nbytes
    if len(groups) == 1:
        save_fp16_safetensors(tensors, path, metadata)
        return [path]
    paths = [path.with_name(f"{path.stem}-{i + 1:05d}-of-{len(groups):05d}{path.suffix}")
             for i in range(len(groups))]
    for group, shard in zip(groups, paths, strict=True):
        save_fp16_safetensors(group, shard, metadata)
    return paths


def write_json(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def atomic_torch_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
