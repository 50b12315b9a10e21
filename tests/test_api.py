"""The library API: `from disrupt import protect` on every kind of input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from disrupt import ProtectResult, protect
from disrupt.errors import DisruptError
from targets import load_target

EPS = 6 / 255


def _array(h: int = 30, w: int = 40, c: int = 3) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(h, w, c), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    return load_target("stargan.tiny")


def _check(result: ProtectResult, clean: np.ndarray) -> None:
    out = (result.image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
    assert out.shape == clean.shape
    assert np.abs(out - clean.astype(np.int16)).max() <= round(EPS * 255)
    assert result.perceptibility["linf_255"] <= EPS * 255 + 1e-4
    assert len(result.disruption) == 5


@pytest.mark.parametrize("kind", ["path", "bytes", "pil", "numpy", "tensor", "file"])
def test_protect_accepts_any_upload(kind: str, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array()
    path = tmp_path / "in.png"
    Image.fromarray(arr).save(path)
    source = {
        "path": path,
        "bytes": path.read_bytes(),
        "pil": Image.fromarray(arr),
        "numpy": arr,
        "tensor": torch.from_numpy(arr).permute(2, 0, 1).float() / 255,
        "file": io.BytesIO(path.read_bytes()),
    }[kind]
    result = protect(source, targets=[tiny], eps=EPS, steps=2)  # type: ignore[arg-type]
    _check(result, arr)


def test_rgba_alpha_is_kept(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array(c=4)
    arr[..., 3] = np.arange(40, dtype=np.uint8)[None, :] * 6
    src = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(src)
    result = protect(src, targets=[tiny], eps=EPS, steps=1, output=tmp_path / "out.png")
    back = Image.open(tmp_path / "out.png")
    assert back.mode == "RGBA"
    assert np.array_equal(np.asarray(back)[..., 3], arr[..., 3])
    assert result.to_pil().mode == "RGBA"


def test_large_non_square_photo_keeps_its_size(tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array(h=300, w=517)
    result = protect(arr, targets=[tiny], eps=EPS, steps=1)
    assert tuple(result.image.shape) == (1, 3, 300, 517)


def test_protection_disrupts_more_than_noise(tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array(h=32, w=32)
    result = protect(arr, targets=[tiny], eps=8 / 255, steps=10)
    # Random noise of the same budget as a baseline.
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    noise = (x + (torch.rand_like(x) * 2 - 1) * 8 / 255).clamp(0, 1)
    from disrupt.eval.evaluation import measure_disruption

    random_mse = np.mean([d.ruiz_mse for d in measure_disruption([tiny], x, noise)[0]])
    attack_mse = np.mean([d.ruiz_mse for d in result.disruption])
    assert attack_mse > 2 * random_mse


def test_seeded_determinism_and_seed_matters(tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array()
    a = protect(arr, targets=[tiny], eps=EPS, steps=2, seed=5).image
    b = protect(arr, targets=[tiny], eps=EPS, steps=2, seed=5).image
    c = protect(arr, targets=[tiny], eps=EPS, steps=2, seed=6).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # pgd's random start follows the seed


def test_ensemble_over_several_targets() -> None:
    arr = _array()
    result = protect(arr, targets=["stargan.tiny", "ganimation.tiny"], eps=EPS, steps=1)
    assert {d.target for d in result.disruption} == {"stargan.tiny", "ganimation.tiny"}


def test_json_summary_round_trips(tiny) -> None:  # type: ignore[no-untyped-def]
    import json

    result = protect(_array(), targets=[tiny], eps=EPS, steps=1)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["attack"]["name"] == "pgd" and data["targets"] == ["stargan.tiny"]


def test_no_target_available_says_what_to_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import disrupt.api as api

    monkeypatch.setattr(api, "default_targets", lambda: [])
    with pytest.raises(DisruptError, match="--target NAME --weights PATH"):
        protect(_array(), targets=None)


def test_jpeg_output_is_measured_as_saved(tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    arr = _array(h=48, w=48)
    png = protect(arr, targets=[tiny], eps=EPS, steps=2, output=tmp_path / "a.png")
    jpg = protect(arr, targets=[tiny], eps=EPS, steps=2, output=tmp_path / "a.jpg")
    # The JPEG is attacked through its own codec (tests/test_jpeg_output.py), and its
    # figures come from the lossy file as written, not from the tensor.
    assert png.through_jpeg is None and jpg.through_jpeg == 95
    assert png.perceptibility["linf_255"] <= EPS * 255 + 1e-4
    from disrupt.eval.metrics import perceptibility
    from disrupt.imaging import reload_saved

    clean = jpg.source.rgb
    written = {k: float(v[0]) for k, v in perceptibility(reload_saved(tmp_path / "a.jpg"),
                                                         clean).items()}
    tensor = {k: float(v[0]) for k, v in perceptibility(jpg.image, clean).items()}
    assert jpg.perceptibility == pytest.approx(written)
    assert jpg.perceptibility != pytest.approx(tensor)
