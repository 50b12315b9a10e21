"""The `disrupt` command line, driven through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from disrupt.cli import app

runner = CliRunner()
TINY = ["--target", "stargan.tiny", "--steps", "2"]


def _photo(path: Path, size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def _invoke(args: list[str]):  # type: ignore[no-untyped-def]
    return runner.invoke(app, args)


def test_protect_writes_beside_input_and_reports(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "face.png")
    before = photo.read_bytes()
    res = _invoke(["protect", str(photo), *TINY])
    assert res.exit_code == 0, res.output
    out = tmp_path / "face.protected.png"
    assert out.exists()
    assert photo.read_bytes() == before  # the original is untouched
    assert Image.open(out).size == (40, 30)
    assert "stargan.tiny" in res.stdout and "PSNR" in res.stdout and "/255" in res.stdout


def test_protect_json_is_machine_readable(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "a.png")
    res = _invoke(["protect", str(photo), *TINY, "--json", "--eps", "0.03"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["attack"]["linf_cap_255"] == pytest.approx(0.03 * 255)  # --eps: the cap
    assert data["attack"]["norm"] == "l2" and data["attack"]["psnr_floor"] == 33.0
    assert data["perceptibility"]["linf_255"] <= 0.03 * 255 + 1e-6
    assert data["perceptibility"]["psnr"] >= 33 - 1e-3
    assert {d["condition"] for d in data["disruption"]} == {
        "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"}
    saved = np.asarray(Image.open(data["output"]).convert("RGB"), dtype=np.int16)
    orig = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    assert np.abs(saved - orig).max() <= int(0.03 * 255)


def test_protect_folder_and_output_dir(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _photo(src / "one.png")
    _photo(src / "two.jpg")
    dest = tmp_path / "out"
    dest.mkdir()
    res = _invoke(["protect", str(src), "-o", str(dest), *TINY])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in dest.iterdir()) == ["one.protected.png", "two.protected.png"]


def test_refuses_existing_output_unless_overwrite(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "p.protected.png"
    out.write_bytes(b"keep me")
    res = _invoke(["protect", str(photo), *TINY])
    assert res.exit_code == 1
    assert out.read_bytes() == b"keep me"
    assert "exists" in res.stderr and "--overwrite" in res.stderr
    res = _invoke(["protect", str(photo), *TINY, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (40, 30)


def test_never_writes_over_input(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    before = photo.read_bytes()
    res = _invoke(["protect", str(photo), "-o", str(photo), *TINY, "--overwrite"])
    assert res.exit_code == 1
    assert photo.read_bytes() == before
    assert str(photo.name) in res.stderr


def test_seeded_runs_are_identical(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    outs = []
    for name in ("a.png", "b.png"):
        res = _invoke(["protect", str(photo), "-o", str(tmp_path / name), *TINY, "--seed", "3"])
        assert res.exit_code == 0, res.output
        outs.append(np.asarray(Image.open(tmp_path / name)))
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: d / "missing.png", "not found"),
        (lambda d: (d / "notes.png").write_text("hello") and d / "notes.png", "not an image"),
        (lambda d: (d / "empty.png").write_bytes(b"") or d / "empty.png", "empty"),
    ],
)
def test_bad_input_is_one_line_nonzero(tmp_path: Path, make, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    res = _invoke(["protect", str(path), *TINY])
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and path.name in errors[0] and problem in errors[0]
    assert not list(tmp_path.glob("*.protected.png"))


def test_truncated_image(tmp_path: Path) -> None:
    good = _photo(tmp_path / "full.png", size=(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    res = _invoke(["protect", str(cut), *TINY])
    assert res.exit_code == 1
    assert "cut.png" in res.stderr and "truncated" in res.stderr
    assert not (tmp_path / "cut.protected.png").exists()


def test_one_bad_file_does_not_stop_the_others(tmp_path: Path) -> None:
    good = _photo(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    res = _invoke(["protect", str(bad), str(good), *TINY])
    assert res.exit_code == 1
    assert (tmp_path / "good.protected.png").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--eps", "0"], "--eps"),
        (["--eps", "1.5"], "--eps"),
        (["--eps", "abc"], "--eps"),
        (["--steps", "0"], "--steps"),
        (["--attack", "nope"], "fgsm"),
        (["--crops", "wide"], "crops must be canonical or family"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    photo = _photo(tmp_path / "p.png")
    res = _invoke(["protect", str(photo), "--target", "stargan.tiny", *args])
    assert res.exit_code == 2, res.output
    assert needle in res.stderr
    assert not (tmp_path / "p.protected.png").exists()


def test_unknown_target_lists_choices(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    res = _invoke(["protect", str(photo), "--target", "nosuchgan"])
    assert res.exit_code == 2
    assert "nosuchgan" in res.stderr and "stargan.tiny" in res.stderr


def test_unwritable_output_folder(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _invoke(["protect", str(photo), "-o", str(blocker / "sub" / "out.png"), *TINY])
    assert res.exit_code == 1
    assert "out.png" in res.stderr or "sub" in res.stderr


def test_checkpoint_problems(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    res = _invoke(["protect", str(photo), "--target", "stargan.celeba"])
    assert res.exit_code == 1 and "--weights" in res.stderr
    res = _invoke(["protect", str(photo), "-t", "stargan.celeba", "-w", str(tmp_path / "no.ckpt")])
    assert res.exit_code == 1 and "no.ckpt" in res.stderr and "not found" in res.stderr
    corrupt = tmp_path / "bad.ckpt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    res = _invoke(["protect", str(photo), "-t", "stargan.celeba", "-w", str(corrupt)])
    assert res.exit_code == 1 and "bad.ckpt" in res.stderr
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"main.0.weight": torch.zeros(1), "extra.key": torch.zeros(1)}, wrong)
    res = _invoke(["protect", str(photo), "-t", "stargan.celeba", "-w", str(wrong)])
    assert res.exit_code == 1 and "missing keys" in res.stderr and "extra.key" in res.stderr


def test_list_commands() -> None:
    res = _invoke(["targets"])
    assert res.exit_code == 0 and "stargan.celeba" in res.stdout and "stargan.tiny" in res.stdout
    res = _invoke(["attacks"])
    assert res.exit_code == 0
    for name in ("fgsm", "ifgsm", "pgd", "mifgsm"):
        assert name in res.stdout


def test_crops_option_reaches_the_attack_and_the_summary(tmp_path: Path) -> None:
    photo = tmp_path / "astronaut.png"
    photo.write_bytes((Path(__file__).resolve().parents[1] / "examples" / "astronaut.png")
                      .read_bytes())
    res = _invoke(["protect", str(photo), "--target", "stargan.tiny", "--steps", "1",
                   "--strength", "low", "--crops", "family"])
    assert res.exit_code == 0, res.output
    assert "crop family" in res.stdout and "1 face found" in res.stdout
    res = _invoke(["protect", str(photo), "--target", "stargan.tiny", "--steps", "1",
                   "--strength", "low", "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["attack"]["crops"] == "canonical"


@pytest.mark.parametrize("command", ["protect", "verify"])
def test_help_keeps_the_extras_install_line(command: str) -> None:
    # rich reads "[landmarks]" as markup and drops it unless escaped; the help must
    # show a command a user can paste.
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    assert "pip install 'disrupt-deepfakes[landmarks]'" in result.output
