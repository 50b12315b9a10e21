"""`disrupt verify ORIGINAL PROTECTED`: picture, verdicts, re-saved inputs, errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from disrupt import protect
from disrupt.api import ProtectResult
from disrupt.cli import app
from disrupt.core.pipeline import plan_protection
from disrupt.eval.figures import grid_size
from disrupt.imaging import load_image
from disrupt.verify import COLUMNS, verify
from targets import load_target

runner = CliRunner()
TINY = ["--target", "stargan.tiny"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An original photo (48x40) and a copy protected against stargan.tiny."""
    folder = tmp_path_factory.mktemp("verify")
    rng = np.random.default_rng(0)
    original = folder / "face.png"
    Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)).save(original)
    protected = folder / "face.protected.png"
    protect(original, targets=["stargan.tiny"], steps=3, output=protected)
    return original, protected


def test_verify_writes_the_picture_with_one_row_per_condition(pair: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    original, protected = pair
    picture = tmp_path / "check.png"
    res = runner.invoke(app, ["verify", str(original), str(protected), *TINY,
                              "--target", "cyclegan.tiny", "-o", str(picture), "--cell", "64",
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["picture"] == str(picture)
    # stargan.tiny has 5 conditions, cyclegan.tiny is unconditional (1 row)
    assert Image.open(picture).size == grid_size(6, len(COLUMNS), 64)
    verdicts = {v["target"]: v for v in data["verdicts"]}
    assert set(verdicts) == {"stargan.tiny", "cyclegan.tiny"}
    assert verdicts["stargan.tiny"]["conditions"] == 5
    assert verdicts["stargan.tiny"]["disrupted"]  # protected against it
    assert data["threshold"] == 0.05 and not data["resized"]
    assert data["face_status"] == "small-image" and data["faces"] == []  # 48x40: no search


def test_verify_text_gives_a_verdict_per_target(pair: tuple[Path, Path], tmp_path: Path) -> None:
    original, protected = pair
    res = runner.invoke(app, ["verify", str(original), str(protected), *TINY,
                              "-o", str(tmp_path / "v.png")])
    assert res.exit_code == 0, res.output
    assert "stargan.tiny: disrupted" in res.stdout
    assert "Ruiz MSE" in res.stdout and "picture:" in res.stdout


def test_verify_accepts_a_jpeg_resaved_resized_copy(pair: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    original, protected = pair
    resaved = tmp_path / "shared.jpg"
    Image.open(protected).resize((47, 40)).save(resaved, quality=85)
    res = runner.invoke(app, ["verify", str(original), str(resaved), *TINY, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["resized"] and data["protected_size"] == [47, 40] and data["size"] == [48, 40]
    assert "resized the protected image to 48x40" in res.stderr
    assert (tmp_path / "shared.verify.png").exists()  # default: beside the protected copy
    assert len(data["disruption"]) == 5


def test_identical_images_are_not_disrupted(pair: tuple[Path, Path]) -> None:
    original, _ = pair
    result = verify(original, original, targets=["stargan.tiny"])
    assert [v.verdict for v in result.verdicts] == ["not disrupted"]
    assert all(d.ruiz_mse == 0 for d in result.disruption)
    assert result.picture(cell=32).size == grid_size(5, 4, 32)


def test_missing_file_is_a_one_line_failure(pair: tuple[Path, Path], tmp_path: Path) -> None:
    original, _ = pair
    missing = tmp_path / "nope.png"
    res = runner.invoke(app, ["verify", str(original), str(missing), *TINY])
    assert res.exit_code == 1
    assert res.stderr.strip() == f"error: {missing}: file not found"


@pytest.mark.parametrize(("extra", "message"), [
    (["--target", "no.such"], "unknown target"),
    (["-o", "picture.jpg"], "PNG"),
])
def test_usage_errors_exit_2(pair: tuple[Path, Path], extra: list[str], message: str) -> None:
    original, protected = pair
    args = ["verify", str(original), str(protected), *extra]
    if "--target" not in extra:
        args += TINY
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------- verify judges as protect measures (faces)

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


@pytest.fixture(scope="module")
def face_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ProtectResult]:
    """examples/astronaut.png (256x256, one face: over twice stargan.tiny's 32x32, so
    faces=None looks for faces) and its copy protected against stargan.tiny."""
    folder = tmp_path_factory.mktemp("verify_faces")
    original = folder / "astronaut.png"
    shutil.copy(ASTRONAUT, original)
    protected = folder / "astronaut.protected.png"
    result = protect(original, targets=["stargan.tiny"], output=protected, seed=0, steps=2)
    assert result.face_status == "used" and len(result.faces) == 1
    return original, protected, result


def _conditions(name: str) -> list[str]:
    return [c.name for c in load_target(name).conditions]


def _near(a: Sequence[int], b: Sequence[int], px: int = 3) -> bool:
    return all(abs(u - v) <= px for u, v in zip(a, b, strict=True))


def test_verify_agrees_with_protect_through_the_face_crop(
        face_pair: tuple[Path, Path, ProtectResult]) -> None:
    original, protected, made = face_pair
    checked = verify(original, protected, targets=["stargan.tiny"], seed=0)
    # same geometry: both find the face on the protected file, with the same crop
    plan = plan_protection(load_image(protected).rgb, [load_target("stargan.tiny")])
    assert checked.face_status == made.face_status == "used"
    assert checked.faces == made.measured_faces
    assert checked.crops == [b.as_tuple() for b in plan.canonical]
    assert _near(made.faces[0], made.measured_faces[0])  # the input's face, give or take
    # same rows: "<target>@face0" x every registered condition, same Ruiz MSEs
    expected = {("stargan.tiny@face0", c) for c in _conditions("stargan.tiny")}
    assert {(d.target, d.condition) for d in checked.disruption} == expected
    assert [(d.target, d.condition) for d in checked.disruption] == \
        [(d.target, d.condition) for d in made.disruption]
    for mine, theirs in zip(checked.disruption, made.disruption, strict=True):
        assert mine.ruiz_mse == pytest.approx(theirs.ruiz_mse, abs=1e-6)
        assert mine.disrupted == theirs.disrupted
    assert [v.target for v in checked.verdicts] == ["stargan.tiny@face0"]
    # the summary says so; the picture shows the crop and the target's edit of it
    summary = checked.to_dict()
    assert summary["face_status"] == "used" and summary["faces"] == [list(made.measured_faces[0])]
    assert summary["crops"] == [list(checked.crops[0])]
    crop = checked.crops[0]
    assert checked.regions == {"stargan.tiny@face0": crop}
    clean, adv = checked.outputs["stargan.tiny@face0"]
    assert clean.shape == adv.shape == (5, 1, 3, 32, 32)  # edits of the 32x32 crop
    assert checked.picture(cell=32).size == grid_size(5, len(COLUMNS), 32)


@pytest.mark.parametrize("copy", ["jpeg90", "resized", "resized-jpeg90"])
def test_verify_finds_the_face_on_a_resaved_or_resized_copy(
        face_pair: tuple[Path, Path, ProtectResult], tmp_path: Path, copy: str) -> None:
    original, protected, made = face_pair
    image: Image.Image = Image.open(protected)
    if "resized" in copy:
        image = image.resize((253, 254))  # a few pixels off
    shared = tmp_path / ("shared.jpg" if "jpeg" in copy else "shared.png")
    if "jpeg" in copy:
        image.save(shared, quality=90)
    else:
        image.save(shared)
    checked = verify(original, shared, targets=["stargan.tiny"], seed=0)
    assert checked.resized == ("resized" in copy)
    assert checked.size == (256, 256) and checked.protected.shape[-2:] == (256, 256)
    assert checked.face_status == "used" and len(checked.faces) == 1
    assert _near(checked.faces[0], made.faces[0])  # the same face, give or take a pixel
    assert {(d.target, d.condition) for d in checked.disruption} == \
        {("stargan.tiny@face0", c) for c in _conditions("stargan.tiny")}
    assert all(d.ruiz_mse > 0 for d in checked.disruption)


def test_verify_without_faces_measures_the_whole_frame_as_protect_does(
        face_pair: tuple[Path, Path, ProtectResult], tmp_path: Path) -> None:
    original, _, _ = face_pair
    protected = tmp_path / "whole.png"
    made = protect(original, targets=["stargan.tiny"], output=protected, seed=0, steps=2,
                   faces=False)
    checked = verify(original, protected, targets=["stargan.tiny"], seed=0, faces=False)
    assert checked.face_status == made.face_status == "off"
    assert checked.faces == [] and checked.crops == []
    assert [(d.target, d.condition) for d in checked.disruption] == \
        [("stargan.tiny", c) for c in _conditions("stargan.tiny")]
    for mine, theirs in zip(checked.disruption, made.disruption, strict=True):
        assert mine.ruiz_mse == pytest.approx(theirs.ruiz_mse, abs=1e-6)
    assert checked.regions == {"stargan.tiny": (0, 0, 256, 256)}
    assert checked.picture(cell=32).size == grid_size(5, len(COLUMNS), 32)


def test_small_photo_is_measured_whole_without_a_face_search(pair: tuple[Path, Path]) -> None:
    original, protected = pair
    checked = verify(original, protected, targets=["stargan.tiny"])
    assert checked.face_status == "small-image" and checked.faces == []
    assert {d.target for d in checked.disruption} == {"stargan.tiny"}


def test_verify_cli_faces_options_and_region_line(
        face_pair: tuple[Path, Path, ProtectResult], tmp_path: Path) -> None:
    original, protected, made = face_pair
    args = ["verify", str(original), str(protected), *TINY, "-o", str(tmp_path / "v.png"),
            "--overwrite"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["face_status"] == "used" and data["faces"] == [list(made.measured_faces[0])]
    assert {d["target"] for d in data["disruption"]} == {"stargan.tiny@face0"}
    text = runner.invoke(app, args)
    assert text.exit_code == 0, text.output
    crop = "({},{})-({},{})".format(*data["crops"][0])
    assert f"region: 1 face found on the protected image; models run on its crop {crop}" \
        in text.stdout
    assert "    stargan.tiny@face0: " in text.stdout  # the verdict line
    whole = runner.invoke(app, [*args, "--no-faces"])
    assert whole.exit_code == 0, whole.output
    assert "region: whole photo (--no-faces)" in whole.stdout
    assert "@face" not in whole.stdout
