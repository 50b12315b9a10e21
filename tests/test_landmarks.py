"""The optional landmark detector (dlib; the ``landmarks`` extra, installed by ``.[dev]``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import disrupt.api
import disrupt.core.landmarks
from disrupt import protect
from disrupt.cli import app
from disrupt.core.faces import Box, detect_faces
from disrupt.core.landmarks import (
    EyesToBox,
    FaceLandmarks,
    detect_landmarks,
    landmark_box,
    landmarks_available,
)
from disrupt.core.pipeline import find_faces
from disrupt.errors import SettingError
from disrupt.imaging import load_image
from disrupt.imaging.pixels import from_pil
from disrupt.verify import verify
from tests._shared import SHARED, in_ci

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.png"
runner = CliRunner()

needs_dlib = pytest.mark.skipif(not landmarks_available() and not in_ci(),
                                reason="the landmarks extra is not installed")


def _iou(a: Box, b: Box) -> float:
    iw = min(a.right, b.right) - max(a.left, b.left)
    ih = min(a.bottom, b.bottom) - max(a.top, b.top)
    inter = max(0, iw) * max(0, ih)
    return inter / (a.width * a.height + b.width * b.height - inter)


def test_the_extra_is_installed_under_ci() -> None:
    if not in_ci():
        pytest.skip("checked under CI, which installs .[dev]")
    assert landmarks_available()


@needs_dlib
def test_eyes_and_box_on_the_example_agree_with_haar() -> None:
    x = load_image(EXAMPLE).rgb
    found = detect_landmarks(x)
    assert len(found) == 1
    face = found[0]
    # the eyes lie inside dlib's box, the nose below them, the head nearly upright
    for ex, ey in (face.right_eye, face.left_eye):
        assert face.box.left <= ex <= face.box.right and face.box.top <= ey <= face.box.bottom
    assert face.nose[1] > max(face.right_eye[1], face.left_eye[1])
    assert face.right_eye[0] < face.left_eye[0] and abs(face.roll_degrees) < 15
    # in the Haar detector's units, the box lands on the Haar box
    assert _iou(landmark_box(face, (x.shape[-2], x.shape[-1])), detect_faces(x)[0]) > 0.7


@needs_dlib
def test_a_face_survives_jpeg_75_on_an_lfw_frame() -> None:
    path = SHARED / "data" / "lfw" / "Colin_Powell" / "Colin_Powell_0001.jpg"
    if not path.exists():
        pytest.skip("no shared data") if not in_ci() else pytest.fail(f"missing {path}")
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=75)
    with Image.open(buf) as im:
        assert len(detect_landmarks(from_pil(im))) >= 1


def test_landmark_box_follows_the_eyes() -> None:
    level = FaceLandmarks(Box(0, 0, 1, 1), (40.0, 50.0), (60.0, 50.0), (50.0, 60.0))
    box = landmark_box(level, (200, 200), EyesToBox(side=2.5, along=0.0, down=0.5))
    # side 2.5 x 20 px, centred 0.5 x 20 px below the eyes' midpoint
    assert box == Box(25, 35, 75, 85)
    # a head rolled by 90 degrees (eyes one above the other) moves the centre sideways
    rolled = FaceLandmarks(Box(0, 0, 1, 1), (50.0, 40.0), (50.0, 60.0), (40.0, 50.0))
    box = landmark_box(rolled, (200, 200), EyesToBox(side=2.5, along=0.0, down=0.5))
    assert ((box.left + box.right) / 2, (box.top + box.bottom) / 2) == (40.0, 50.0)
    # clipped to the photo
    assert landmark_box(level, (60, 60), EyesToBox(side=4.0)) == Box(10, 10, 60, 60)


def test_unknown_detector_is_refused() -> None:
    x = load_image(EXAMPLE).rgb
    with pytest.raises(SettingError, match="unknown face detector 'mtcnn'"):
        find_faces(x, "mtcnn")


def test_missing_extra_is_a_usage_error_before_any_work(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("protect() ran: the error was not caught before the work")

    monkeypatch.setattr(disrupt.api, "protect", refuse)
    monkeypatch.setattr(disrupt.core.landmarks, "landmarks_available", lambda: False)
    photo = tmp_path / "p.png"
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(photo)
    for args in (["protect", str(photo)], ["verify", str(photo), str(photo)]):
        res = runner.invoke(app, [*args, "-t", "stargan.tiny", "--detector", "dlib"])
        assert res.exit_code == 2, res.output
        errors = [line for line in res.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "landmarks" in errors[0], res.output
    res = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", "--detector", "x"])
    assert res.exit_code == 2 and "--detector must be haar or dlib" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


@needs_dlib
def test_protect_and_verify_agree_with_the_landmark_detector(tmp_path: Path) -> None:
    out = tmp_path / "a.protected.png"
    made = protect(EXAMPLE, targets=["stargan.tiny"], steps=2, faces=True, detector="dlib",
                   output=out)
    assert made.detector == "dlib" and made.face_status == "used"
    assert made.to_dict()["detector"] == "dlib"
    checked = verify(EXAMPLE, out, targets=["stargan.tiny"], faces=True, detector="dlib")
    assert checked.detector == "dlib" and checked.faces == made.measured_faces
    for mine, theirs in zip(checked.disruption, made.disruption, strict=True):
        assert mine.ruiz_mse == pytest.approx(theirs.ruiz_mse, abs=1e-6)
    # the crops follow the eyes, not the Haar box: they differ from the default's
    haar = protect(EXAMPLE, targets=["stargan.tiny"], steps=1, faces=True)
    assert haar.detector == "haar" and haar.faces != made.faces
