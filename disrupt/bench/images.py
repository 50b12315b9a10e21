"""The images of a benchmark: listing a folder, centre-cropping and resizing each
image to the 8-bit grid, and naming the saved examples.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from disrupt.bench.cells import ALL_CONDITIONS
from disrupt.bench.config import (
    BenchConfig,
    ConfigError,
)
from disrupt.errors import DisruptError
from disrupt.imaging import load_image
from disrupt.imaging.load import IMAGE_SUFFIXES
from disrupt.imaging.pixels import center_box, to_pil

log = logging.getLogger(__name__)




@dataclass
class BenchImage:
    """One preprocessed image: ``x`` ``(1, 3, H, W)`` in ``[0, 1]`` on the 8-bit grid."""

    name: str
    x: Tensor
    digest: str


def list_images(cfg: BenchConfig) -> list[Path]:
    """The image files a config selects (sorted by name)."""
    if cfg.images is None:
        raise ConfigError("no images: pass --images FOLDER (or set images in the config)")
    folder = cfg.images
    if not folder.is_dir():
        raise DisruptError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if cfg.start is not None:
        files = [p for p in files if p.name >= cfg.start]
    if cfg.limit is not None:
        files = files[: cfg.limit]
    if not files:
        raise DisruptError(f"{folder}: no images selected (suffixes {', '.join(IMAGE_SUFFIXES)})")
    return files


def load_bench_image(path: Path, center_crop: int | None, size: int | None) -> BenchImage:
    """Load, centre-crop and resize one image; returns it on the 8-bit grid."""
    loaded = load_image(path)
    im = to_pil(loaded.rgb)
    if center_crop is not None:
        im = im.crop(center_box(*im.size, center_crop))
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    x = torch.from_numpy(arr.astype(np.float32).transpose(2, 0, 1).copy() / 255.0)[None]
    return BenchImage(path.name, x, hashlib.sha256(arr.tobytes()).hexdigest()[:16])


def image_stem(name: str, condition: str) -> str:
    stem = Path(name).stem
    return stem if condition == ALL_CONDITIONS else f"{stem}.{condition}"
