"""`disrupt verify ORIGINAL PROTECTED`: picture, verdicts, re-saved inputs, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from disrupt import protect
from disrupt.cli import app
from disrupt.eval.figures import grid_size
from disrupt.verify import COLUMNS, verify

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
