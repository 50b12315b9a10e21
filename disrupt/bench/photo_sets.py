"""The real-photo sets of ``disrupt bench --real-photos``: whole photos from a data folder.

The data folder is laid out like the project's shared data (nothing here knows
where that is; the caller passes the folder)::

    DATA/lfw/George_W_Bush/*.jpg, DATA/lfw/Colin_Powell/*.jpg   250x250 deep-funneled
    DATA/utkface/labels.csv, DATA/utkface/images/*.jpg           200x200 frames
    DATA/celeba10k/images/009401.jpg, ...                        aligned half-size CelebA
    DATA/photos/astronaut.png                                    512x512 portrait

The sets, each chosen deterministically:

- ``lfw``: whole LFW frames of both people (face in the middle third, head and
  background around it), every k-th file of the sorted list;
- ``utkface``: whole UTKFace frames of the *test* split
  (:func:`targets.training.data.split_of`), ages >= 15 as in training, every k-th;
- ``celeba``: CelebA test-split crops, CenterCrop(89) of 009401, 009402, ...;
- ``astronaut``: the portrait, and with ``large`` the same upscaled (bicubic) into a
  4000x3000 12 MP photo (:func:`upscaled_portrait`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch import Tensor

from disrupt.errors import DisruptError, ImageError, SettingError, one_line
from disrupt.imaging.load import check_readable
from disrupt.imaging.pixels import center_box, from_pil
from targets.training.data import CELEBA_CROP, LFW_IDENTITIES, MIN_AGE, split_of

__all__ = ["CELEBA_FIRST", "SETS", "Photo", "check_data", "choose_photos", "upscaled_portrait",
           "utkface_test_names"]

SETS: tuple[str, ...] = ("lfw", "utkface", "celeba", "astronaut")
#: First CelebA test image used; the test split ends at 009500.
CELEBA_FIRST = 9401
#: What each set reads, relative to the data folder (checked before any work starts).
SET_PATHS: dict[str, tuple[str, ...]] = {
    "lfw": tuple(f"lfw/{ident}" for ident in LFW_IDENTITIES),
    "utkface": ("utkface/labels.csv", "utkface/images"),
    "celeba": ("celeba10k/images",),
    "astronaut": ("photos/astronaut.png",),
}


@dataclass(frozen=True)
class Photo:
    """One benchmark photo: its set, a name, and pixels ``(1, 3, H, W)`` in ``[0, 1]``."""

    set: str
    name: str
    image: Tensor


def check_data(data: Path, sets: Sequence[str], per_set: int = 1) -> None:
    """Fail early, on one line, for what :func:`choose_photos` could not read.

    Raises:
        SettingError: a set name not in :data:`SETS`, or ``per_set`` CelebA photos
            would reach past the test split.
        DisruptError: ``data`` is not a folder, or a file or folder a set needs is
            missing (the message names the path and the set).
    """
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise SettingError(f"sets: unknown set {unknown[0]!r} (one of {', '.join(SETS)})")
    if "celeba" in sets:
        _celeba_names(per_set)
    if not data.is_dir():
        raise DisruptError(f"{data}: data folder not found (it should hold lfw/, utkface/, "
                           "celeba10k/images/ and photos/astronaut.png)")
    for name in sets:
        for rel in SET_PATHS[name]:
            if not (data / rel).exists():
                raise DisruptError(f"{data / rel}: not found (set {name} needs it)")


def _spread(items: Sequence[str], n: int) -> list[str]:
    """``n`` items spread evenly over ``items`` (the middle of each of ``n`` equal runs):
    deterministic, and mixes whatever the sort order groups together."""
    if n >= len(items):
        return list(items)
    return [items[(2 * i + 1) * len(items) // (2 * n)] for i in range(n)]


def _open(path: Path, crop: int | None = None) -> Tensor:
    """The photo at ``path`` (centre ``crop`` square, when given) as ``(1, 3, H, W)`` in
    ``[0, 1]``; :class:`ImageError` naming the path when it cannot be read."""
    check_readable(path, str(path))
    try:
        with Image.open(path) as im:
            # Crop before converting, exactly as the benchmark always has.
            return from_pil(im.crop(center_box(im.width, im.height, crop)) if crop else im)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read image ({one_line(exc)})") from exc


def lfw_photos(data: Path, n: int) -> list[Photo]:
    """Whole 250x250 LFW frames of both people (sorted by file name, every k-th)."""
    files = sorted(p for ident in LFW_IDENTITIES for p in (data / "lfw" / ident).glob("*.jpg"))
    return [Photo("lfw", Path(f).name, _open(Path(f)))
            for f in _spread([str(f) for f in files], n)]


def utkface_test_names(data: Path) -> list[str]:
    """Sorted UTKFace file names of the test split with age >= ``MIN_AGE`` (training's rule)."""
    root = data / "utkface"
    with open(root / "labels.csv", newline="") as fh:
        ages = {r["filename"]: int(r["age"]) for r in csv.DictReader(fh)}
    return sorted(n for n, age in ages.items() if age >= MIN_AGE
                  and split_of("utkface", n) == "test" and (root / "images" / n).exists())


def utkface_photos(data: Path, n: int) -> list[Photo]:
    """Whole 200x200 UTKFace test-split frames (every k-th of the sorted names)."""
    return [Photo("utkface", name, _open(data / "utkface" / "images" / name))
            for name in _spread(utkface_test_names(data), n)]


def _celeba_names(n: int, first: int = CELEBA_FIRST) -> list[str]:
    """``first``, ``first + 1``, ... as CelebA file names; :class:`SettingError` when
    they reach past the test split (the bundled models trained on the rest)."""
    names = [f"{number:06d}.jpg" for number in range(first, first + n)]
    for i, name in enumerate(names):
        if split_of("celeba", name) != "test":
            raise SettingError(f"per_set {n}: CelebA {name} is not in the test split "
                               f"(at most {i} from {first:06d}.jpg)")
    return names


def celeba_photos(data: Path, n: int, first: int = CELEBA_FIRST) -> list[Photo]:
    """CelebA test-split crops: CenterCrop(89) of ``first``, ``first + 1``, ..."""
    return [Photo("celeba", name, _open(data / "celeba10k" / "images" / name, CELEBA_CROP))
            for name in _celeba_names(n, first)]


def upscaled_portrait(source: Image.Image, width: int = 4000, height: int = 3000) -> Image.Image:
    """A ``width x height`` RGB photo with one large face: ``source`` upscaled (bicubic)
    to ``height x height`` in the middle, its mirror images filling the sides, so the
    photo has realistic full-resolution smoothness (assumes ``width >= height``)."""
    face = source.convert("RGB").resize((height, height), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (width, height))
    left = (width - height) // 2
    canvas.paste(face, (left, 0))
    mirrored = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas.paste(mirrored.crop((height - left, 0, height, height)), (0, 0))
    canvas.paste(mirrored.crop((0, 0, width - left - height, height)), (left + height, 0))
    return canvas


def astronaut_photos(data: Path, large: bool) -> list[Photo]:
    """The 512x512 portrait; with ``large`` also its 4000x3000 upscale (12 MP)."""
    path = data / "photos" / "astronaut.png"
    photos = [Photo("astronaut", path.name, _open(path))]
    if large:
        with Image.open(path) as im:
            # PNG is lossless, so this equals writing the upscale and reading it back.
            big = from_pil(upscaled_portrait(im))
        photos.append(Photo("astronaut", "astronaut_12mp (4000x3000)", big))
    return photos


def choose_photos(data: Path, sets: Sequence[str], per_set: int, *,
                  large: bool = False) -> list[Photo]:
    """The benchmark photos of ``sets`` in that order: ``per_set`` from each dataset,
    the astronaut once (twice with ``large``). See :func:`check_data` for the errors."""
    check_data(data, sets, per_set)
    photos: list[Photo] = []
    for name in sets:
        if name == "lfw":
            photos += lfw_photos(data, per_set)
        elif name == "utkface":
            photos += utkface_photos(data, per_set)
        elif name == "celeba":
            photos += celeba_photos(data, per_set)
        else:
            photos += astronaut_photos(data, large)
    return photos
