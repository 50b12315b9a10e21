"""JPEG outputs: the attack optimises through the codec the file is written with.

Covers :mod:`disrupt.core.jpeg` (a 4:4:4 differentiable JPEG checked against Pillow),
:func:`disrupt.core.pipeline.eot_for_output`, ``protect(output=..., jpeg_quality=...)``
and ``disrupt protect --jpeg-quality``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import disrupt.api
from disrupt import protect
from disrupt.cli import app
from disrupt.core.budget import resolve_budget
from disrupt.core.jpeg import jpeg444_differentiable, quantization_tables
from disrupt.core.pipeline import eot_for_output
from disrupt.core.transforms import JPEG_EOT_TRANSFORMS, FixedJPEG, RandomJPEG, jpeg_differentiable
from disrupt.errors import SettingError
from disrupt.eval.evaluation import measure_disruption
from disrupt.imaging import reload_saved, save_image
from targets import load_target

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _textured(seed: int = 0, size: int = 67) -> torch.Tensor:
    """A photo-like ``(1, 3, size, size)`` image on the 8-bit grid: the astronaut's
    corner plus noise (edges, texture and flat parts), odd-sized to exercise padding."""
    from disrupt.imaging import load_image

    base = load_image(ROOT / "examples" / "astronaut.png").rgb[..., 40 : 40 + size, 60 : 60 + size]
    noise = 0.02 * torch.randn(base.shape, generator=torch.Generator().manual_seed(seed))
    return torch.round((base + noise).clamp(0, 1) * 255) / 255


def _pillow_jpeg(x: torch.Tensor, quality: int) -> tuple[torch.Tensor, dict[int, list[int]]]:
    buf = io.BytesIO()
    pixels = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality, subsampling=0)
    im = Image.open(buf)
    tables = {k: list(v) for k, v in im.quantization.items()}  # type: ignore[attr-defined]
    back = torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1)[None]
    return back.float() / 255, tables


@pytest.mark.parametrize("quality", [95, 75, 50])
def test_quantization_tables_are_pillows(quality: int) -> None:
    _, written = _pillow_jpeg(_textured(), quality)
    luma, chroma = quantization_tables(quality)
    # Pillow lists the tables row by row (natural order), as we build them.
    assert luma.flatten().int().tolist() == written[0]
    assert chroma.flatten().int().tolist() == written[1]


@pytest.mark.parametrize("quality", [95, 75])
def test_codec_matches_pillow_444_closer_than_a_420_codec(quality: int) -> None:
    x = _textured()
    pillow, _ = _pillow_jpeg(x, quality)
    ours = jpeg444_differentiable(x, quality)
    kornia_420 = jpeg_differentiable(x, quality)
    ours_err = (ours - pillow).abs().mean() * 255
    other_err = (kornia_420 - pillow).abs().mean() * 255
    change = (pillow - x).abs().mean() * 255
    assert ours.shape == x.shape
    assert ours_err < 1.2, ours_err  # libjpeg's integer DCT rounds some coefficients the other way
    assert ours_err < 0.6 * other_err, (ours_err, other_err)
    assert ours_err < change  # it models the codec, not the identity


def test_codec_passes_gradients_and_is_near_identity_at_quality_100() -> None:
    x = _textured().requires_grad_(True)
    out = jpeg444_differentiable(x, 100)
    # Only the 8-bit YCbCr round trip remains, as in libjpeg: under half a level.
    assert (out - x).abs().mean() * 255 < 0.5
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_eot_mix_follows_the_output_format() -> None:
    with_eot = resolve_budget("mid")
    no_eot = resolve_budget("low")
    assert with_eot.eot and not no_eot.eot
    assert eot_for_output(with_eot, None) == (with_eot, JPEG_EOT_TRANSFORMS)
    budget, mix = eot_for_output(with_eot, 80)
    assert budget == with_eot and mix == (FixedJPEG(80.0), RandomJPEG())
    budget, mix = eot_for_output(no_eot, 80)
    assert budget.eot and budget.eot_samples == 1 and mix == (FixedJPEG(80.0),)


def test_jpeg_output_is_written_at_its_quality_and_measured_as_written(tmp_path: Path) -> None:
    target = load_target("stargan.tiny")
    x = _textured(size=48)
    out = tmp_path / "p.jpg"
    result = protect(x, targets=[target], steps=3, strength="low", output=out,
                     jpeg_quality=60)
    assert result.through_jpeg == 60 and result.eot
    _, written = _pillow_jpeg(x, 60)
    assert {k: list(v) for k, v in Image.open(out).quantization.items()} == written  # type: ignore[attr-defined]
    measured = measure_disruption([target], x, reload_saved(out), seed=0)[0]
    assert [d.ruiz_mse for d in result.disruption] == pytest.approx(
        [d.ruiz_mse for d in measured], rel=1e-5)


def test_through_a_low_quality_jpeg_beats_saving_afterwards(tmp_path: Path) -> None:
    """Measured on the JPEG file: optimising through its codec moves a model's outputs
    further than attacking for a lossless file and compressing afterwards."""
    target = load_target("stargan.tiny")
    through, after = [], []
    for seed in range(3):
        x = _textured(seed=seed, size=48)
        a = tmp_path / f"through{seed}.jpg"
        protect(x, targets=[target], steps=10, strength="low", output=a, jpeg_quality=50,
                seed=seed)
        plain = protect(x, targets=[target], steps=10, strength="low", seed=seed)
        b = save_image(plain.image, tmp_path / f"after{seed}.jpg", jpeg_quality=50)
        through += [d.ruiz_mse for d in measure_disruption([target], x, reload_saved(a))[0]]
        after += [d.ruiz_mse for d in measure_disruption([target], x, reload_saved(b))[0]]
    assert np.mean(through) > 1.2 * np.mean(after), (np.mean(through), np.mean(after))


def test_jpeg_quality_needs_a_jpeg_output() -> None:
    with pytest.raises(SettingError, match="needs a .jpg"):
        protect(_textured(size=32), targets=["stargan.tiny"], steps=1, jpeg_quality=80)
    with pytest.raises(SettingError, match="needs a .jpg"):
        protect(_textured(size=32), targets=["stargan.tiny"], steps=1, jpeg_quality=80,
                output="x.png")


@pytest.mark.parametrize(("args", "words"), [
    (["--jpeg-quality", "80"], "needs .jpg outputs"),  # default output is a .png
    (["--jpeg-quality", "0", "-o", "OUT.jpg"], "1 to 100"),
])
def test_cli_jpeg_quality_is_checked_before_any_work(tmp_path: Path, args: list[str],
                                                     words: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("protect() ran: the error was not caught before the work")

    monkeypatch.setattr(disrupt.api, "protect", refuse)
    photo = tmp_path / "p.png"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8) + 90).save(photo)
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    res = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", *args])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_many_photo_path_carries_the_jpeg_quality_and_detector(tmp_path: Path) -> None:
    """protect_many (the Dask path's worker function, run here in process) passes the
    JPEG quality and the detector on to protect()."""
    from disrupt.distributed.protect import protect_many, settings_from

    photo = tmp_path / "p.png"
    x = _textured(size=48)
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(photo)
    settings = settings_from(resolve_budget("low", steps=2), targets=["stargan.tiny"],
                             jpeg_quality=60, detector="haar")
    [outcome] = list(protect_many([photo], settings, outputs=[tmp_path / "p.jpg"]))
    assert outcome.ok and outcome.summary is not None
    assert outcome.summary["attack"]["through_jpeg"] == 60
    _, written = _pillow_jpeg(x, 60)
    saved = Image.open(tmp_path / "p.jpg")
    assert {k: list(v) for k, v in saved.quantization.items()} == written  # type: ignore[attr-defined]
