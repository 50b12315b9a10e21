"""Nothing lost, nothing half-written, every bad option refused before any work.

One test (or a parametrized group) per fix of the "Trustworthy" issue: verify never
writes over its inputs, colliding outputs are refused up front, bad options fail on
one line before a model runs, temporary files vanish on SIGTERM and full disks,
protect() is deterministic across threads, and the smaller promises (standard JSON,
one error family, no silent weakening).
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

import disrupt.api
from disrupt import protect
from disrupt.cli import app
from disrupt.core.seeding import resolve_device
from disrupt.errors import DisruptError, ImageError, InputTypeError, SettingError
from disrupt.files import write_atomically
from targets import GeneratorTarget, load_target, register_target
from targets import registry as target_registry

runner = CliRunner()
TINY = ["--target", "stargan.tiny", "--steps", "1"]
ROOT = Path(__file__).resolve().parents[1]


def _photo(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


@pytest.fixture
def no_attack(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the CLI gets as far as protecting a photo."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("protect() ran: the error was not caught before the work")

    monkeypatch.setattr(disrupt.api, "protect", refuse)


# --------------------------------------------------------------- 1. verify -o


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    original = _photo(tmp_path / "orig.png")
    res = runner.invoke(app, ["protect", str(original), *TINY, "-q"])
    assert res.exit_code == 0, res.output
    return original, tmp_path / "orig.protected.png"


@pytest.mark.parametrize("which", ["original", "protected"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_verify_never_writes_over_an_input(pair: tuple[Path, Path], which: str,
                                           overwrite: bool) -> None:
    original, protected = pair
    before = {p: p.read_bytes() for p in pair}
    target = original if which == "original" else protected
    args = ["verify", str(original), str(protected), "-t", "stargan.tiny", "-o", str(target)]
    res = runner.invoke(app, args + (["--overwrite"] if overwrite else []))
    assert res.exit_code == 1
    assert "over an input" in _one_line_error(res.output)
    assert {p: p.read_bytes() for p in pair} == before


def test_verify_default_picture_name_equal_to_an_input_is_refused(tmp_path: Path) -> None:
    # PROTECTED.verify.png of "x.png" is "x.verify.png": name the original that way.
    original = _photo(tmp_path / "x.verify.png")
    protected = _photo(tmp_path / "x.png", size=(40, 30))
    before = original.read_bytes()
    res = runner.invoke(app, ["verify", str(original), str(protected), "-t", "stargan.tiny",
                              "--overwrite"])
    assert res.exit_code == 1 and "over an input" in _one_line_error(res.output)
    assert original.read_bytes() == before


def test_verify_existing_picture_needs_overwrite(pair: tuple[Path, Path], tmp_path: Path) -> None:
    original, protected = pair
    other = tmp_path / "other.png"
    other.write_bytes(b"keep me")
    args = ["verify", str(original), str(protected), "-t", "stargan.tiny", "-o", str(other)]
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and "--overwrite" in _one_line_error(res.output)
    assert other.read_bytes() == b"keep me"
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert Image.open(other).format == "PNG"


# --------------------------------------------------------------- 2. colliding outputs


def test_same_stem_in_one_folder_is_refused_before_any_work(tmp_path: Path,
                                                             no_attack: None) -> None:
    Image.open(_photo(tmp_path / "img.png")).save(tmp_path / "img.tiff")
    Image.open(tmp_path / "img.png").save(tmp_path / "img.webp", lossless=True)
    (tmp_path / "img.png").unlink()
    res = runner.invoke(app, ["protect", str(tmp_path), *TINY, "--overwrite"])
    assert res.exit_code == 2
    assert "img.tiff" in _one_line_error(res.output) and "img.webp" in res.output
    assert not list(tmp_path.glob("*.protected.*"))


def test_same_name_in_two_folders_into_one_output_is_refused(tmp_path: Path,
                                                             no_attack: None) -> None:
    (tmp_path / "da").mkdir()
    (tmp_path / "db").mkdir()
    (tmp_path / "out").mkdir()
    a, b = _photo(tmp_path / "da" / "x.png"), _photo(tmp_path / "db" / "x.png")
    res = runner.invoke(app, ["protect", str(a), str(b), "-o", f"{tmp_path / 'out'}/", *TINY])
    assert res.exit_code == 2 and "would be written there" in _one_line_error(res.output)
    assert not list((tmp_path / "out").iterdir())


# --------------------------------------------------------------- 3 and 4. options checked first


@pytest.mark.parametrize(("args", "words"), [
    (["--eps", "0.001"], "1/255"),
    (["--device", "tpu9"], "not a device name"),
    (["--seed", "99999999999999999999"], "--seed"),
    (["--psnr", "100"], "48.1"),
    (["--target", "stargan.tiny"], "more than once"),  # TINY names it once already
])
def test_bad_options_fail_on_one_line_before_any_work(tmp_path: Path, no_attack: None,
                                                      args: list[str], words: str) -> None:
    photo = _photo(tmp_path / "p.png")
    res = runner.invoke(app, ["protect", str(photo), *TINY, *args])
    assert res.exit_code == 2
    assert words in _one_line_error(res.output)
    assert not (tmp_path / "p.protected.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["protect", "verify", "bench"])
def test_cuda_without_a_gpu_is_a_usage_error(tmp_path: Path, no_attack: None,
                                             command: str) -> None:
    photo = _photo(tmp_path / "p.png")
    args = {"protect": ["protect", str(photo), *TINY],
            "verify": ["verify", str(photo), str(photo), "-t", "stargan.tiny",
                       "-o", str(tmp_path / "v.png")],
            "bench": ["bench", "--images", str(tmp_path), "-t", "stargan.tiny",
                      "--out", str(tmp_path / "b")]}[command]
    res = runner.invoke(app, [*args, "--device", "cuda"])
    assert res.exit_code == 2
    assert "no CUDA GPU" in _one_line_error(res.output)
    assert not (tmp_path / "b").exists() and not (tmp_path / "v.png").exists()


def test_empty_universal_tensor_is_refused_before_any_work(tmp_path: Path,
                                                           no_attack: None) -> None:
    from safetensors.torch import save_file

    save_file({"perturbation": torch.zeros(3, 0, 0)}, str(tmp_path / "u.safetensors"))
    photo = _photo(tmp_path / "p.png")
    res = runner.invoke(app, ["protect", str(photo), *TINY, "--universal",
                              str(tmp_path / "u.safetensors")])
    assert res.exit_code != 0
    assert "(3, 0, 0)" in _one_line_error(res.output)


@pytest.mark.parametrize(("output", "reason"), [
    ("x.bmp", "unsupported output format '.bmp'"),
    ("missing/", "missing/: output folder does not exist"),
    ("missing/x.png", "output folder does not exist"),
])
def test_output_problems_found_before_any_work(tmp_path: Path, no_attack: None,
                                               monkeypatch: pytest.MonkeyPatch, output: str,
                                               reason: str) -> None:
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "p.png")
    res = runner.invoke(app, ["protect", "p.png", *TINY, "-o", output])
    assert res.exit_code != 0
    assert reason in _one_line_error(res.output)
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


# --------------------------------------------------------------- 5. threads


def test_protect_is_deterministic_across_threads(tmp_path: Path) -> None:
    # pix2pix.tiny runs with dropout on: its outputs depend on torch's global RNG.
    photo = _photo(tmp_path / "p.png", size=(32, 32))
    target = load_target("pix2pix.tiny")

    def run() -> torch.Tensor:
        return protect(photo, targets=[target], steps=3, eot=False, seed=5).image

    expected = run()
    results: list[torch.Tensor] = []
    threads = [threading.Thread(target=lambda: results.append(run())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(torch.equal(r, expected) for r in results)


# --------------------------------------------------------------- 6. temporary files


def test_sigterm_during_a_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    script = f"""
import os, signal, sys
from pathlib import Path
sys.path.insert(0, {str(ROOT)!r})
from disrupt.cli import _exit_on_sigterm
from disrupt.files import write_atomically
_exit_on_sigterm()
def write(f):
    f.write(b"half of an image")
    os.kill(os.getpid(), signal.SIGTERM)
    f.write(b"never")
write_atomically(Path({str(tmp_path / 'out.png')!r}), write)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert os.listdir(tmp_path) == []


def test_verify_on_a_full_disk_leaves_no_temporary_file(pair: tuple[Path, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    original, protected = pair
    result = disrupt.verify.verify(original, protected, targets=["stargan.tiny"])
    listing = sorted(os.listdir(tmp_path))

    def full_disk(self: Image.Image, fp: object, format: str | None = None, **_: object) -> None:
        assert hasattr(fp, "write")
        fp.write(b"\x89PNG partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(DisruptError, match="No space left"):
        result.save_picture(tmp_path / "v.png")
    assert sorted(os.listdir(tmp_path)) == listing


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "keep.txt"
    out.write_bytes(b"old")

    def fail(f: io.BufferedWriter) -> None:
        f.write(b"new, half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(out, fail)  # type: ignore[arg-type]
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.txt"]


# --------------------------------------------------------------- 7. smaller promises


class _Constant(nn.Module):
    """An 'editor' that ignores its input: any perturbation leaves its output as is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0  # differentiable, with a zero gradient


@pytest.fixture
def constant_target() -> Iterator[str]:
    name = "test.constant"

    @register_target(name, description="ignores its input (tests)")
    def _factory(weights: object = None) -> GeneratorTarget:
        return GeneratorTarget(name, _Constant(), value_range=(-1, 1), input_size=(16, 16))

    yield name
    target_registry._REGISTRY.pop(name, None)


def test_json_is_standard_even_with_identical_outputs(tmp_path: Path,
                                                      constant_target: str) -> None:
    photo = _photo(tmp_path / "p.png")
    res = runner.invoke(app, ["protect", str(photo), "-t", constant_target, "--steps", "1",
                              "--json", "-q"])
    assert res.exit_code == 0, res.output

    def refuse(text: str) -> None:
        raise AssertionError(f"non-standard JSON constant {text}")

    data = json.loads(res.stdout, parse_constant=refuse)
    assert data["disruption"][0]["psnr"] is None  # identical outputs: infinite PSNR


def test_an_unchanged_result_is_reported(tmp_path: Path, constant_target: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    # FGSM against a model with zero gradient takes no step: nothing changes.
    photo = _photo(tmp_path / "p.png")
    with caplog.at_level(logging.WARNING):
        result = protect(photo, targets=[constant_target], attack="fgsm", psnr=0, eps=4 / 255,
                         eot=False)
    assert result.unchanged
    assert "equals the input" in caplog.text
    moved = protect(photo, targets=["stargan.tiny"], steps=1, eot=False)
    assert not moved.unchanged


def test_duplicated_targets_are_refused_by_the_library() -> None:
    target = load_target("stargan.tiny")
    with pytest.raises(SettingError, match="more than once"):
        protect(torch.rand(1, 3, 16, 16), targets=[target, "stargan.tiny"], steps=1)


def test_a_stream_is_never_overwritten_by_its_own_output(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    before = photo.read_bytes()
    with open(photo, "rb") as stream, pytest.raises(ImageError, match="over the input"):
        protect(stream, targets=["stargan.tiny"], steps=1, output=photo, overwrite=True)
    assert photo.read_bytes() == before


def test_refused_pickle_message_is_whole_and_short(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.getcwd, ())  # type: ignore[return-value]

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps(Evil()))
    res = runner.invoke(app, ["protect", str(_photo(tmp_path / "p.png")), "-t", "stargan.celeba",
                              "--weights", str(path)])
    line = _one_line_error(res.output)
    reason = line[line.index("(") + 1 : -1]
    assert res.exit_code == 1 and line.endswith("could run code)") and len(reason) < 120


def test_one_error_family_for_user_input() -> None:
    with pytest.raises(DisruptError) as info:
        protect(12345, targets=["stargan.tiny"])  # type: ignore[arg-type]
    assert isinstance(info.value, InputTypeError) and isinstance(info.value, TypeError)
    with pytest.raises(DisruptError) as bad:
        protect(torch.rand(1, 3, 8, 8), targets=["stargan.tiny"], eps=0.0001, psnr=0)
    assert isinstance(bad.value, ValueError)
    with pytest.raises(SettingError):
        protect(torch.rand(1, 3, 8, 8), targets=["stargan.tiny"], seed=-1)


# --------------------------------------------------------------- 8. device auto, budget once


def test_auto_device_uses_a_gpu_when_there_is_one() -> None:
    expected = "cuda" if torch.cuda.is_available() else None
    got = resolve_device("auto").type
    assert got == expected or (expected is None and got in {"cpu", "mps"})
    assert resolve_device("cpu").type == "cpu"


def test_cli_settles_the_budget_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, object]] = []
    real = disrupt.api.protect

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(disrupt.api, "protect", spy)
    photo = _photo(tmp_path / "p.png")
    res = runner.invoke(app, ["protect", str(photo), *TINY, "--psnr", "35", "-q"])
    assert res.exit_code == 0, res.output
    (kwargs,) = calls
    assert kwargs["budget"].psnr == 35  # type: ignore[attr-defined]
    assert not {"strength", "attack", "eps", "psnr", "eot", "steps"} & set(kwargs)
    with pytest.raises(SettingError, match="budget="):
        real(photo, targets=["stargan.tiny"], budget=kwargs["budget"], eps=0.1)  # type: ignore[arg-type]


def test_result_says_where_eot_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert protect(x, targets=["stargan.tiny"], steps=1, eot=True).eot_on == "photo"
    assert protect(x, targets=["stargan.tiny"], steps=1, eot=False).eot_on == "off"
    monkeypatch.setattr("disrupt.core.pipeline.EOT_ON_PHOTO_MAX_PIXELS", 16)
    result = protect(x, targets=["stargan.tiny"], steps=1, eot=True)
    assert result.eot_on == "crops" and result.to_dict()["eot_on"] == "crops"


def test_a_missing_bundled_model_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import targets.bundled

    real = targets.bundled.weights_installed
    monkeypatch.setattr(targets.bundled, "weights_installed",
                        lambda name, weights=None: name != "attgan.celeba96" and real(name))
    with caplog.at_level(logging.WARNING):
        names = disrupt.api.default_targets()
    assert "attgan.celeba96" not in names
    assert "attgan.celeba96 is not installed" in caplog.text


def test_a_damaged_evaluator_is_named_not_called_absent(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import targets.bundled
    from disrupt.eval.semantic import load_judges

    weights = tmp_path / "weights"
    shutil.copytree(targets.bundled.WEIGHTS_DIR, weights)
    damaged = weights / targets.bundled.EVALUATOR_FILES["celeba"]
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(targets.bundled, "WEIGHTS_DIR", weights)
    judges, notes = load_judges(["stargan.celeba96"])
    assert "stargan.celeba96" not in judges
    assert any("installed but failed to load" in n and "sha256" in n for n in notes), notes


# --------------------------------------------------------------- pipelines (issue 9, item 8)


def test_require_disruption_fails_loudly_and_keeps_the_file(tmp_path: Path,
                                                            constant_target: str) -> None:
    from disrupt.errors import NotDisrupted

    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "p.protected.png"
    with pytest.raises(NotDisrupted) as info:
        protect(photo, targets=[constant_target], steps=1, output=out, require_disruption=True)
    assert info.value.undisrupted and all(u.startswith(constant_target)
                                           for u in info.value.undisrupted)
    assert out.exists() and str(out) in str(info.value)
    res = runner.invoke(app, ["protect", str(photo), "-t", constant_target, "--steps", "1",
                              "--require-disruption", "-o", str(tmp_path / "cli.png")])
    assert res.exit_code == 1
    assert "not disrupted past Ruiz MSE 0.05" in _one_line_error(res.output)
    assert (tmp_path / "cli.png").exists()
    # Without the option the same run succeeds.
    res = runner.invoke(app, ["protect", str(photo), "-t", constant_target, "--steps", "1",
                              "-o", str(tmp_path / "ok.png")])
    assert res.exit_code == 0, res.output


def test_measure_false_skips_the_figures_not_the_protection(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    measured = protect(photo, targets=["stargan.tiny"], steps=2, seed=3)
    fast = protect(photo, targets=["stargan.tiny"], steps=2, seed=3, measure=False,
                   output=tmp_path / "fast.png")
    # The same protected pixels, written; only the figures are left out.
    assert torch.equal(fast.image, measured.image)
    assert (tmp_path / "fast.png").exists()
    assert measured.measured and measured.disruption and measured.perceptibility
    assert not fast.measured
    assert fast.disruption == [] and fast.perceptibility == {}
    assert fast.region_perceptibility == {} and fast.measured_faces == []
    assert fast.to_dict()["measured"] is False
    with pytest.raises(SettingError, match="require_disruption needs the measurement"):
        protect(photo, targets=["stargan.tiny"], steps=1, measure=False,
                require_disruption=True)


def test_cli_no_measure_says_so_and_refuses_require_disruption(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    out = tmp_path / "out.png"
    res = runner.invoke(app, ["protect", str(photo), *TINY, "--no-measure", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists()
    assert f"not measured (--no-measure); to measure it: disrupt verify {photo} {out}" \
        in res.output
    assert "disruption (Ruiz MSE" not in res.output
    res = runner.invoke(app, ["protect", str(photo), *TINY, "--no-measure",
                              "--require-disruption", "-o", str(tmp_path / "x.png")])
    assert res.exit_code == 2
    assert "--require-disruption needs the measurement" in _one_line_error(res.output)
    assert not (tmp_path / "x.png").exists()
