"""The face pack: every training/evaluation image in one ``.npz``, with fixed splits.

Build it once (reads ``../shared/data``, writes about 40 MB)::

    python -m targets.training.data pack --shared ../shared/data --out .train/faces.npz

Preprocessing (all results ``S x S`` RGB, ``S = --size``, default 64, stored as JPEG
quality 92):

- ``celeba``: CenterCrop(89) of the 89x109 half-size aligned images, then resize to
  ``S`` (StarGAN's CenterCrop(178) + Resize at half resolution; 96 and 128 are
  upsampled). Labels: the 40 official attributes, 0/1.
- ``utkface``: ages >= 15 only, 200x200 resized to ``S``. Label: age group
  0 = young (15-29), 1 = middle (30-49), 2 = old (50+). Ages are kept too.
- ``lfw``: deep-funneled 250x250, central ``LFW_CROP`` px box (the face), resized to
  ``S``. Label: 0 = George_W_Bush, 1 = Colin_Powell.

A pack holds one size (``--size 96`` for the CPU StarGAN, 128 on a GPU): the images are
stored already resized rather than as 89 px crops resized at load, so every reader
(trainers, evaluators, quality) gets ready ``S x S`` images with no resize step and no
second resampling path; a 96 px pack is 57 MiB, still small.

Splits (deterministic, independent of the machine and of which other files exist):

- ``celeba`` by file number: generator 000001-006000, evaluator 006001-009000,
  test 009001-009500.
- ``utkface`` and ``lfw``: the first 8 bytes of SHA-256 of the file name, modulo
  10,000, give a stable per-file number ``h``; ``h < 6000`` generator, ``h < 8500``
  evaluator, otherwise test (60/25/15). For LFW this holds within each identity.

Generators train on ``generator`` only; evaluators on ``evaluator`` only; every
quality figure is measured on ``test``, so no model is judged on its own training
images.

The ``.npz`` holds, per dataset ``d``: ``d_jpeg`` (uint8, all JPEG files concatenated),
``d_offsets`` (int64, N+1), ``d_labels``, ``d_names`` (unicode), ``d_label_names``
(unicode); ``utkface_ages`` (int16); ``image_size`` (int64 scalar; absent in packs made
before it existed, which are 64 px). It loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

Dataset = Literal["celeba", "utkface", "lfw"]
DATASETS: tuple[str, ...] = ("celeba", "utkface", "lfw")
SPLITS: tuple[str, ...] = ("generator", "evaluator", "test")
SIZE = 64  # the default pack size
JPEG_QUALITY = 92
CELEBA_CROP = 89
LFW_CROP = 116  # central box of the 250x250 deep-funneled LFW images holding the face
LFW_IDENTITIES: tuple[str, ...] = ("George_W_Bush", "Colin_Powell")
AGE_GROUPS: tuple[str, ...] = ("young", "middle", "old")
MIN_AGE = 15
CELEBA_RANGES = {"generator": (1, 6000), "evaluator": (6001, 9000), "test": (9001, 9500)}
HASH_BOUNDS = {"generator": (0, 6000), "evaluator": (6000, 8500), "test": (8500, 10000)}


def age_group(age: int) -> int:
    """0 = young (15-29), 1 = middle (30-49), 2 = old (50+)."""
    if age < MIN_AGE:
        raise ValueError(f"age {age} is below {MIN_AGE}: children are not in the pack")
    return 0 if age <= 29 else 1 if age <= 49 else 2


def stable_hash(name: str) -> int:
    """A per-file number in ``[0, 10000)`` that never changes (SHA-256 based)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % 10000


def split_of(dataset: str, name: str) -> str:
    """Which split the file ``name`` of ``dataset`` belongs to ('' when in none)."""
    if dataset == "celeba":
        number = int(Path(name).stem)
        for split, (lo, hi) in CELEBA_RANGES.items():
            if lo <= number <= hi:
                return split
        return ""
    h = stable_hash(name)
    for split, (lo, hi) in HASH_BOUNDS.items():
        if lo <= h < hi:
            return split
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- packing


def _encode(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def _center_box(w: int, h: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    left = int(round((w - cw) / 2.0))
    top = int(round((h - ch) / 2.0))
    return left, top, left + cw, top + ch


def _prep_celeba(path: Path, size: int = SIZE) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im = im.crop(_center_box(im.width, im.height, CELEBA_CROP, CELEBA_CROP))
        return _encode(im.resize((size, size), Image.Resampling.BILINEAR))


def _prep_utk(path: Path, size: int = SIZE) -> bytes:
    with Image.open(path) as im:
        return _encode(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def _prep_lfw(path: Path, size: int = SIZE) -> bytes:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im = im.crop(_center_box(im.width, im.height, LFW_CROP, LFW_CROP))
        return _encode(im.resize((size, size), Image.Resampling.BILINEAR))


def _concat(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8).copy()
    return data, offsets


def _limited(names: list[str], dataset: str, limit: int | None) -> list[str]:
    """With ``limit``, keep up to ``limit`` files of each split (for tests)."""
    if limit is None:
        return names
    kept: list[str] = []
    counts = dict.fromkeys(SPLITS, 0)
    for n in names:
        s = split_of(dataset, n)
        if s and counts[s] < limit:
            counts[s] += 1
            kept.append(n)
    return kept


def pack_faces(
    shared_data: Path, out: Path, *, limit: int | None = None, workers: int = 4,
    size: int = SIZE,
) -> None:
    """Preprocess ``shared_data`` (the ``../shared/data`` folder) into one ``.npz`` at ``out``.

    ``limit``: keep at most this many images per split and dataset (LFW: per
    identity too), for tests. ``size``: side of the stored square images. Written
    atomically.
    """
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    shared_data = Path(shared_data)
    arrays: dict[str, np.ndarray] = {}
    pool = ThreadPoolExecutor(max_workers=workers)

    # CelebA
    root = shared_data / "celeba10k"
    with open(root / "attributes.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    attr_names = rows[0][1:]
    table = {r[0]: [int(v) for v in r[1:]] for r in rows[1:]}
    names = sorted(n for n in table if split_of("celeba", n))
    names = _limited(names, "celeba", limit)
    blobs = list(pool.map(partial(_prep_celeba, size=size), [root / "images" / n for n in names]))
    arrays["celeba_jpeg"], arrays["celeba_offsets"] = _concat(blobs)
    arrays["celeba_labels"] = np.array([table[n] for n in names], dtype=np.uint8).reshape(
        len(names), len(attr_names)
    )
    arrays["celeba_names"] = np.array(names, dtype=str)
    arrays["celeba_label_names"] = np.array(attr_names, dtype=str)

    # UTKFace
    root = shared_data / "utkface"
    with open(root / "labels.csv", newline="") as fh:
        ages = {r["filename"]: int(r["age"]) for r in csv.DictReader(fh)}
    names = sorted(n for n, a in ages.items() if a >= MIN_AGE and (root / "images" / n).exists())
    names = _limited(names, "utkface", limit)
    blobs = list(pool.map(partial(_prep_utk, size=size), [root / "images" / n for n in names]))
    arrays["utkface_jpeg"], arrays["utkface_offsets"] = _concat(blobs)
    arrays["utkface_labels"] = np.array([age_group(ages[n]) for n in names], dtype=np.int64)
    arrays["utkface_ages"] = np.array([ages[n] for n in names], dtype=np.int16)
    arrays["utkface_names"] = np.array(names, dtype=str)
    arrays["utkface_label_names"] = np.array(AGE_GROUPS, dtype=str)

    # LFW
    root = shared_data / "lfw"
    names, labels = [], []
    for label, ident in enumerate(LFW_IDENTITIES):
        files = sorted(p.name for p in (root / ident).glob("*.jpg"))
        files = _limited(files, "lfw", limit)
        names += files
        labels += [label] * len(files)
    blobs = list(pool.map(partial(_prep_lfw, size=size),
                          [root / n.rsplit("_", 1)[0] / n for n in names]))
    arrays["lfw_jpeg"], arrays["lfw_offsets"] = _concat(blobs)
    arrays["lfw_labels"] = np.array(labels, dtype=np.int64)
    arrays["lfw_names"] = np.array(names, dtype=str)
    arrays["lfw_label_names"] = np.array(LFW_IDENTITIES, dtype=str)
    pool.shutdown()
    arrays["image_size"] = np.array(size, dtype=np.int64)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(out)


# ----------------------------------------------------------------------------- loading


@dataclass
class FaceSet:
    """Decoded images of one dataset split.

    ``images``: ``(N, 3, S, S)`` uint8 RGB (``S`` the pack's size, 64 by default).
    ``labels``: celeba ``(N, 40)`` float32 0/1; utkface ``(N,)`` long age group; lfw
    ``(N,)`` long identity. ``label_names``: attribute / group / identity names indexed
    like the labels. ``names``: file names.
    """

    images: Tensor
    labels: Tensor
    label_names: list[str]
    names: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _decode(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_faces(
    pack: Path | str,
    dataset: Dataset,
    split: str,
    device: str | torch.device = "cpu",
    *,
    workers: int = 4,
) -> FaceSet:
    """Decode one ``split`` ('generator', 'evaluator', 'test') of ``dataset`` from ``pack``."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    with np.load(pack, allow_pickle=False) as z:
        data = z[f"{dataset}_jpeg"]
        offsets = z[f"{dataset}_offsets"]
        all_names = [str(n) for n in z[f"{dataset}_names"]]
        all_labels = z[f"{dataset}_labels"]
        label_names = [str(n) for n in z[f"{dataset}_label_names"]]
        size = int(z["image_size"]) if "image_size" in z.files else SIZE
    idx = [i for i, n in enumerate(all_names) if split_of(dataset, n) == split]
    blobs = [data[offsets[i]:offsets[i + 1]].tobytes() for i in idx]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        decoded = list(pool.map(_decode, blobs))
    if decoded:
        arr = np.stack(decoded).transpose(0, 3, 1, 2).copy()
    else:
        arr = np.zeros((0, 3, size, size), dtype=np.uint8)
    images = torch.from_numpy(arr).to(device)
    sel = all_labels[idx]
    if dataset == "celeba":
        labels = torch.from_numpy(sel.astype(np.float32)).reshape(len(idx), len(label_names))
    else:
        labels = torch.from_numpy(sel.astype(np.int64))
    return FaceSet(images, labels.to(device), label_names, [all_names[i] for i in idx])


# ----------------------------------------------------------------------------- helpers


def to_unit(images: Tensor) -> Tensor:
    """uint8 ``(..., H, W)`` in ``[0, 255]`` -> float32 in ``[0, 1]`` (same device)."""
    return images.float().div_(255.0)


def random_flip(batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image of ``(B, C, H, W)`` left-right with probability 1/2.

    ``generator`` must live on the batch's device (or be ``None``).
    """
    flip = torch.rand(batch.shape[0], device=batch.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(-1), batch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m targets.training.data")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="build the face pack .npz")
    p.add_argument("--shared", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path(".train/faces.npz"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--size", type=int, default=SIZE,
                   help="side of the stored images (64; 96 for the CPU StarGAN, 128 on a GPU)")
    args = parser.parse_args(argv)
    pack_faces(args.shared, args.out, limit=args.limit, size=args.size)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
