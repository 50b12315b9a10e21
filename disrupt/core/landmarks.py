"""Faces found through landmarks (optional): dlib's HOG detector and 5-point predictor.

A manipulator aligns a face on its eyes before cropping it (CelebA's crops are
aligned that way), so a crop predicted from the eyes lands closer to the
manipulator's than one predicted from a detector's box. This module finds faces with
dlib's frontal HOG detector (Dalal and Triggs, CVPR 2005; dlib's
``get_frontal_face_detector``), places five landmarks on each (the corners of both
eyes and the base of the nose; dlib's ``shape_predictor_5_face_landmarks``, trained
on dlib's own 7,198-face set, CC0), and turns the eyes into a face box in the *Haar
detector's units* (:func:`landmark_box`), so that every crop of
:data:`disrupt.core.faces.CROP_FAMILY` applies unchanged.

Optional, because of its size: ``pip install 'disrupt-deepfakes[landmarks]'``
installs ``dlib-bin`` (dlib's prebuilt wheel, Boost licence) and
``face-recognition-models`` (the predictor's weights, 100 MB as a source archive).
Nothing is downloaded at run time.

How the eyes map to a Haar-sized box (:data:`EYES_TO_HAAR_BOX`) was fitted on the
training split (``benchmarks/face_detectors.py --fit``); the benchmark's other mode
measures both detectors on the test split against the crops the bundled models were
trained on.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from torch import Tensor

from disrupt.core.faces import DETECT_MAX_SIDE, Box, gray_for_detection
from disrupt.errors import SettingError

__all__ = [
    "EYES_TO_HAAR_BOX",
    "LANDMARKS_EXTRA",
    "EyesToBox",
    "FaceLandmarks",
    "detect_landmarks",
    "landmark_box",
    "landmarks_available",
]

LANDMARKS_EXTRA = "pip install 'disrupt-deepfakes[landmarks]'"


@dataclass(frozen=True)
class FaceLandmarks:
    """One face: dlib's detection box and the eye centres and nose base, in pixels."""

    box: Box
    right_eye: tuple[float, float]  # the subject's right eye: on the image's left
    left_eye: tuple[float, float]
    nose: tuple[float, float]

    @property
    def eye_distance(self) -> float:
        return math.dist(self.right_eye, self.left_eye)

    @property
    def roll_degrees(self) -> float:
        """The head's in-plane rotation: the angle of the line through the eyes."""
        (x0, y0), (x1, y1) = self.right_eye, self.left_eye
        return math.degrees(math.atan2(y1 - y0, x1 - x0))


@dataclass(frozen=True)
class EyesToBox:
    """A square box from the eyes: side ``side`` eye distances, centred ``along`` eye
    distances from the eyes' midpoint along the eye line and ``down`` eye distances
    perpendicular to it (toward the mouth)."""

    side: float
    along: float = 0.0
    down: float = 0.0


#: Fitted on the generator split, 60 faces per set (medians over the 176 dlib found;
#: ``along`` came out 0.02 and is set to 0 by symmetry;
#: ``python benchmarks/face_detectors.py --fit``; benchmarks/results/face_detectors.md).
EYES_TO_HAAR_BOX = EyesToBox(side=2.58, along=0.0, down=0.31)


def landmarks_available() -> bool:
    """Whether the optional extra (dlib and the predictor's weights) is installed."""
    return (importlib.util.find_spec("dlib") is not None
            and importlib.util.find_spec("face_recognition_models") is not None)


def _predictor_path() -> Path:
    # Located without importing the package: its __init__ needs pkg_resources, which
    # recent setuptools no longer ship.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SettingError(f"face landmarks need an optional extra: {LANDMARKS_EXTRA}")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / \
        "shape_predictor_5_face_landmarks.dat"
    if not path.is_file():
        raise SettingError(f"{path}: dlib's 5-point landmark model is missing; "
                           f"reinstall with {LANDMARKS_EXTRA}")
    return path


@cache
def _models() -> tuple[Any, Any]:
    if not landmarks_available():
        raise SettingError(f"face landmarks need an optional extra: {LANDMARKS_EXTRA}")
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(_predictor_path()))


def detect_landmarks(image: Tensor, *, upsample: int = 1,
                     max_side: int | None = None) -> list[FaceLandmarks]:
    """Find faces and their landmarks with dlib.

    Args:
        image: ``(1, 3, H, W)`` or ``(3, H, W)`` float in ``[0, 1]``, any size.
        upsample: dlib's pyramid upsampling (1 finds faces down to about 40 px).
        max_side: detection runs on the image shrunk to this longest side
            (default: :data:`disrupt.core.faces.DETECT_MAX_SIDE`); points are scaled back.

    Returns:
        Faces in the image's own pixels, largest first; empty when none.

    Raises:
        SettingError: the optional extra is not installed.
    """
    detector, predictor = _models()
    gray, factor = gray_for_detection(image, max_side or DETECT_MAX_SIDE, equalize=False)
    faces = []
    for rect in detector(gray, upsample):
        shape = predictor(gray, rect)
        p = [(shape.part(i).x / factor, shape.part(i).y / factor) for i in range(5)]
        # dlib's order: one eye's outer and inner corner, then the other's, then the nose.
        eye_a = ((p[0][0] + p[1][0]) / 2, (p[0][1] + p[1][1]) / 2)
        eye_b = ((p[2][0] + p[3][0]) / 2, (p[2][1] + p[3][1]) / 2)
        right, left = sorted((eye_a, eye_b))  # by x: the subject's right eye first
        box = Box(max(0, math.floor(rect.left() / factor)), max(0, math.floor(rect.top() / factor)),
                  math.ceil((rect.right() + 1) / factor), math.ceil((rect.bottom() + 1) / factor))
        faces.append(FaceLandmarks(box, right, left, p[4]))
    return sorted(faces, key=lambda f: -f.eye_distance)


def landmark_box(face: FaceLandmarks, image_size: tuple[int, int],
                 fit: EyesToBox = EYES_TO_HAAR_BOX) -> Box:
    """The Haar-sized face box implied by ``face``'s eyes, clipped to the photo.

    ``image_size`` is ``(height, width)``. The box is axis-aligned: a roll of a few
    degrees moves its centre (through ``down``) but does not rotate it.
    """
    (x0, y0), (x1, y1) = face.right_eye, face.left_eye
    d = max(face.eye_distance, 1e-6)
    ux, uy = (x1 - x0) / d, (y1 - y0) / d  # along the eyes
    vx, vy = -uy, ux  # perpendicular, pointing down the face
    cx = (x0 + x1) / 2 + (fit.along * ux + fit.down * vx) * d
    cy = (y0 + y1) / 2 + (fit.along * uy + fit.down * vy) * d
    half = fit.side * d / 2
    height, width = image_size
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(width, round(cx + half)), min(height, round(cy + half))
    if right <= left or bottom <= top:
        raise ValueError(f"landmarks at ({cx:.0f}, {cy:.0f}) fall outside a "
                         f"{width}x{height} photo")
    return Box(left, top, right, bottom)

