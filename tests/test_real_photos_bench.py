"""``disrupt bench --real-photos`` and ``benchmarks/real_photos.py``: the files, the numbers
and the errors, on one or two shared photos with the tiny StarGAN (seconds, CPU)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from disrupt.bench import photo_sets, real_photos
from disrupt.cli import app
from disrupt.eval.intervals import wilson
from tests._shared import DATA, benchmark_module, require

runner = CliRunner()
TINY = ["--target", "stargan.tiny", "--threads", "1", "--quiet"]


def _timeless(value: Any) -> Any:
    """``value`` without its wall-clock entries (``*seconds*`` keys), which differ per run."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "seconds" not in k}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _summary(results: dict[str, Any]) -> dict[str, Any]:
    """What two runs of the same photos and settings must agree on, as stored in JSON."""
    keep = {k: results[k] for k in ("targets", "channels", "threshold", "sets", "all")}
    return json.loads(json.dumps(_timeless(keep)))


def _assert_sane_models(models: dict[str, Any]) -> None:
    """Every channel of every model: outputs counted, rate = disrupted / n, and the 95%
    Wilson interval inside [0, 1] around the rate."""
    for per_channel in models.values():
        assert list(per_channel) == list(real_photos.CHANNELS)
        for stats in per_channel.values():
            lo, hi = stats["ci95"]
            assert stats["n"] > 0
            assert stats["rate"] == pytest.approx(stats["disrupted"] / stats["n"])
            assert 0.0 <= lo <= stats["rate"] <= hi <= 1.0
            assert math.isfinite(stats["mean_ruiz_mse"])


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """One CLI run on a CelebA crop and an LFW frame, 2 attack steps."""
    require(DATA / "celeba10k" / "images", "CelebA images")
    require(DATA / "lfw", "LFW frames")
    out = tmp_path_factory.mktemp("real") / "bench-out"
    res = runner.invoke(app, ["bench", "--real-photos", str(DATA), "--sets", "celeba",
                              "--sets", "lfw", "--per-set", "1", "--steps", "2", "--out",
                              str(out), *TINY])
    assert res.exit_code == 0, res.output
    return out, res


def test_cli_writes_json_and_markdown_for_every_set_and_channel(cli_run: tuple[Path, Any]) -> None:
    out, res = cli_run
    assert sorted(p.name for p in out.iterdir()) == ["real_photos.json", "real_photos.md"]
    data = json.loads((out / "real_photos.json").read_text())
    assert data["targets"] == ["stargan.tiny"]
    assert data["channels"] == list(real_photos.CHANNELS) and real_photos.SOCIAL in data["channels"]
    assert (data["per_set"], data["steps"], data["strength"]) == (1, 2, "mid")
    assert data["environment"]["torch_threads"] == 1
    assert [i["set"] for i in data["images"]] == ["celeba", "lfw"]
    assert all(set(i["rows"]) == set(real_photos.CHANNELS) for i in data["images"])
    assert list(data["sets"]) == ["celeba", "lfw"]
    for s in data["sets"].values():
        assert len(s["images"]) == 1 and sum(s["face_status"].values()) == 1
        assert all(math.isfinite(s["region_perceptibility"][k]) for k in real_photos.REGION_KEYS)
        _assert_sane_models(s["models"])
    _assert_sane_models(data["all"]["models"])
    assert data["all"]["images"] == 2
    for channel in real_photos.CHANNELS:  # the all-sets row pools the per-set outputs
        assert data["all"]["models"]["stargan.tiny"][channel]["n"] == sum(
            s["models"]["stargan.tiny"][channel]["n"] for s in data["sets"].values())

    md = (out / "real_photos.md").read_text()
    assert md.startswith("# Real-photo benchmark") and data["command"] in md
    for heading in ("### celeba: 009401.jpg", "### lfw: ", "### all sets (2 images)"):
        assert heading in md
    assert md.count("| stargan.tiny |") == 3 and real_photos.SOCIAL in md
    assert md.endswith(real_photos.markdown(data))
    assert real_photos.markdown(data) in res.stdout
    assert f"json: {out / 'real_photos.json'}" in res.stdout


def test_cli_numbers_match_the_library(cli_run: tuple[Path, Any]) -> None:
    out, _ = cli_run
    photos = photo_sets.choose_photos(DATA, ["celeba", "lfw"], 1)
    direct = real_photos.run_benchmark(photos, targets=["stargan.tiny"], steps=2,
                                       strength="mid", seed=0)
    assert _summary(direct) == _summary(json.loads((out / "real_photos.json").read_text()))


def test_cli_json_output_and_the_script_agree(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    require(DATA / "celeba10k" / "images", "CelebA images")
    res = runner.invoke(app, ["bench", "--real-photos", str(DATA), "--sets", "celeba",
                              "--per-set", "1", "--out", str(tmp_path / "cli"), "--json", *TINY])
    assert res.exit_code == 0, res.output
    printed = json.loads(res.stdout)
    assert set(printed["files"]) == {"json", "markdown"}

    # The script measures the bundled models; stand the tiny one in for them (the
    # bundled set takes minutes per photo on a CPU).
    import disrupt.api

    monkeypatch.setattr(disrupt.api, "default_targets", lambda: ["stargan.tiny"])
    script = benchmark_module("real_photos")
    assert script.main(["--data", str(DATA), "--sets", "celeba", "--per-set", "1",
                        "--threads", "1", "--out", str(tmp_path / "s.json"),
                        "--md", str(tmp_path / "s.md")]) == 0
    saved = json.loads((tmp_path / "s.json").read_text())
    assert list(saved)[:16] == [  # the script's JSON keeps its format
        "command", "argv", "threads", "omp_num_threads", "torch", "git", "sets_asked",
        "per_set", "large", "strength", "objective", "perceptual", "crop_jitter", "psnr",
        "detector", "crops"]
    assert (tmp_path / "s.md").read_text().endswith(real_photos.markdown(saved))
    assert _summary(saved) == _summary(printed)


def _empty(tmp: Path) -> Path:
    (tmp / "data").mkdir()
    return tmp / "data"


@pytest.mark.parametrize(("args", "code", "needle"), [
    (lambda t: ["--real-photos", str(t / "nope")], 1, "nope: data folder not found"),
    (lambda t: ["--real-photos", str(_empty(t)), "--sets", "lfw"], 1,
     "lfw/George_W_Bush: not found (set lfw needs it)"),
    (lambda t: ["--real-photos", str(_empty(t)), "--sets", "utkface"], 1,
     "utkface/labels.csv: not found"),
    (lambda t: ["--real-photos", str(_empty(t)), "--sets", "faces"], 2,
     "--sets: unknown set 'faces' (one of lfw, utkface, celeba, astronaut)"),
    (lambda t: ["--real-photos", str(_empty(t)), "--speed"], 2,
     "--speed cannot be used with --real-photos"),
    (lambda t: ["--real-photos", str(_empty(t)), "--attack", "pgd"], 2,
     "--attack cannot be used with --real-photos"),
    (lambda t: ["--real-photos", str(_empty(t)), "--per-set", "0"], 2, "--per-set"),
    (lambda t: ["--real-photos", str(_empty(t)), "--steps", "1", "--steps", "2"], 2,
     "--steps: give one value"),
    (lambda t: ["--real-photos", str(_empty(t)), "--strength", "max"], 2,
     "--strength must be low, mid or high, got 'max'"),
    (lambda t: ["--real-photos", str(_empty(t)), "--sets", "celeba", "--per-set", "101"], 2,
     "009501.jpg is not in the test split"),
    (lambda t: ["--sets", "lfw"], 2, "--sets needs --real-photos"),
    (lambda t: ["--speed", "--large"], 2, "--large needs --real-photos"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, args: Any, code: int,
                                                   needle: str) -> None:
    out = tmp_path / "bench-out"
    res = runner.invoke(app, ["bench", *args(tmp_path), "--out", str(out), *TINY])
    assert res.exit_code == code, res.output
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ")
    assert needle in res.stderr
    assert not out.exists() and res.stdout == ""


def test_wilson_interval_contains_the_rate_and_stays_in_range() -> None:
    assert wilson([]) == (0.0, 1.0)
    lo, hi = wilson([0.0] * 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # the textbook 0/10 bound
    lo, hi = wilson([1.0] * 7 + [0.0] * 3)
    assert 0.0 < lo < 0.7 < hi < 1.0
    assert wilson([1.0] * 10) == pytest.approx((1 - 0.2775, 1.0), abs=1e-4)


def test_upscaled_portrait_mirrors_the_face_into_the_sides() -> None:
    source = Image.effect_noise((16, 16), 64).convert("RGB")
    photo = photo_sets.upscaled_portrait(source, 40, 30)
    assert photo.size == (40, 30) and photo.mode == "RGB"
    face = source.resize((30, 30), Image.Resampling.BICUBIC)
    assert photo.crop((5, 0, 35, 30)).tobytes() == face.tobytes()
    # Column 4 mirrors the face's first column, column 35 its last.
    assert photo.crop((4, 0, 5, 30)).tobytes() == face.crop((0, 0, 1, 30)).tobytes()
    assert photo.crop((35, 0, 36, 30)).tobytes() == face.crop((29, 0, 30, 30)).tobytes()
