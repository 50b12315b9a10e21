"""Tests for disrupt.eval.perceptual: CIEDE2000 on Sharma et al.'s published pairs, the
region summary on images with a known change, and ST-LPIPS (optional package)."""

from __future__ import annotations

import importlib.util
import math
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from disrupt.eval import metrics, perceptual, stlpips
from disrupt.eval.metrics import psnr, ssim, ssim_map
from disrupt.eval.perceptual import CHANGED_LEVEL, _ciede2000_lab, ciede2000, region_perceptibility
from disrupt.eval.stlpips import ST_LPIPS_MIN_SIZE, st_lpips, st_lpips_available
from tests._shared import in_ci

# Sharma, Wu and Dalal (2005), Table 1: (L1, a1, b1, L2, a2, b2, dE00), kL = kC = kH = 1.
SHARMA_PAIRS = [
    (50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425),
    (50.0000, 3.1571, -77.2803, 50.0000, 0.0000, -82.7485, 2.8615),
    (50.0000, 2.8361, -74.0200, 50.0000, 0.0000, -82.7485, 3.4412),
    (50.0000, -1.3802, -84.2814, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -1.1848, -84.8006, 50.0000, 0.0000, -82.7485, 1.0000),
    (50.0000, -0.9009, -85.5211, 50.0000, 0.0000, -82.7485, 1.0000),
    # 7-8: one colour neutral (C' = 0: hue 0, hue difference 0, mean hue = the sum).
    (50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669),
    (50.0000, -1.0000, 2.0000, 50.0000, 0.0000, 0.0000, 2.3669),
    # 9-16: hues about 180 degrees apart, either side of the wrap-around of the hue
    # difference and of the mean hue's branches.
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0009, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0010, 7.1792),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0011, 7.2195),
    (50.0000, 2.4900, -0.0010, 50.0000, -2.4900, 0.0012, 7.2195),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0009, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0010, -2.4900, 4.8045),
    (50.0000, -0.0010, 2.4900, 50.0000, 0.0011, -2.4900, 4.7461),
    (50.0000, 2.5000, 0.0000, 50.0000, 0.0000, -2.5000, 4.3065),
    # 17-24: large differences, then unit differences in several directions.
    (50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492),
    (50.0000, 2.5000, 0.0000, 61.0000, -5.0000, 29.0000, 22.8977),
    (50.0000, 2.5000, 0.0000, 56.0000, -27.0000, -3.0000, 31.9030),
    (50.0000, 2.5000, 0.0000, 58.0000, 24.0000, 15.0000, 19.4535),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2972, 0.0000, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 1.8634, 0.5757, 1.0000),
    (50.0000, 2.5000, 0.0000, 50.0000, 3.2592, 0.3350, 1.0000),
    # 25-34: pairs from other colour-difference data sets, dark and light colours.
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (63.0109, -31.0961, -5.8663, 62.8187, -29.7946, -4.0864, 1.2630),
    (61.2901, 3.7196, -5.3901, 61.4292, 2.2480, -4.9620, 1.8731),
    (35.0831, -44.1164, 3.7933, 35.0232, -40.0716, 1.5901, 1.8645),
    (22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373),
    (36.4612, 47.8580, 18.3852, 36.2715, 50.5065, 21.2231, 1.4146),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (90.9257, -0.5406, -0.9208, 88.6381, -0.8985, -0.7239, 1.5381),
    (6.7747, -0.2908, -2.4247, 5.8714, -0.0985, -2.2286, 0.6377),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]
PAIRS = torch.tensor(SHARMA_PAIRS, dtype=torch.float64)

FACE = Path(__file__).resolve().parents[1] / "examples" / "face.png"

needs_st_lpips = pytest.mark.skipif(
    not st_lpips_available() and not in_ci(),
    reason="stlpips-pytorch not installed (pip install 'disrupt-deepfakes[perceptual]')",
)


def _levels(t: Tensor) -> Tensor:
    """Round to 8-bit levels, as a saved image is."""
    return (t * 255).round() / 255


# --- CIEDE2000 ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ciede2000_matches_the_34_published_pairs(dtype: torch.dtype) -> None:
    d = _ciede2000_lab(PAIRS[:, 0:3].to(dtype), PAIRS[:, 3:6].to(dtype), dim=-1)
    # The table gives 4 decimals.
    assert torch.allclose(d.double(), PAIRS[:, 6], atol=1e-4, rtol=0)


@pytest.mark.parametrize("i", [0, 6, 8, 10, 12, 14, 15, 33])
def test_ciede2000_published_pairs_one_at_a_time_and_reversed(i: int) -> None:
    lab1 = PAIRS[i, 0:3].view(3, 1, 1)
    lab2 = PAIRS[i, 3:6].view(3, 1, 1)
    expected = float(PAIRS[i, 6])
    assert float(_ciede2000_lab(lab1, lab2)) == pytest.approx(expected, abs=1e-4)
    assert float(_ciede2000_lab(lab2, lab1)) == pytest.approx(expected, abs=1e-4)


def test_ciede2000_lab_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        _ciede2000_lab(torch.zeros(4, 3), torch.zeros(4, 2), dim=-1)
    with pytest.raises(ValueError):
        _ciede2000_lab(torch.zeros(4, 4), torch.zeros(4, 4), dim=-1)


def test_ciede2000_images_zero_when_identical_symmetric_and_shaped() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 9, 13, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    d = ciede2000(a, b)
    assert d.shape == (2, 9, 13)
    assert (d > 0).all()
    assert torch.equal(ciede2000(a, a), torch.zeros(2, 9, 13))
    assert torch.allclose(d, ciede2000(b, a), atol=1e-5)


def test_ciede2000_black_white_is_100_and_one_level_is_small() -> None:
    black, white = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.allclose(ciede2000(black, white), torch.full((1, 2, 2), 100.0), atol=1e-3)
    grey = torch.full((1, 3, 2, 2), 128 / 255)
    one_level = ciede2000(grey, grey + 1 / 255)
    assert (one_level > 0.1).all() and (one_level < 1).all()


def test_ciede2000_in_bands_equals_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 17, 11, generator=g), torch.rand(2, 3, 17, 11, generator=g)
    whole = ciede2000(a, b)
    monkeypatch.setattr(perceptual, "_CIEDE_BAND_PIXELS", 50)  # 2 rows of 2 images
    assert torch.allclose(ciede2000(a, b), whole, atol=1e-5)


# --- SSIM map -------------------------------------------------------------------------


def test_ssim_map_averages_to_ssim_and_a_box_is_the_crop(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 40, 33, generator=g)
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    full = ssim_map(a, b)
    assert full.shape == a.shape
    assert torch.allclose(full.mean(dim=(1, 2, 3)), ssim(a, b), atol=1e-6)
    for box in [(0, 3, 0, 2), (10, 20, 5, 30), (35, 40, 30, 33), (0, 40, 0, 33)]:
        top, bottom, left, right = box
        assert torch.allclose(ssim_map(a, b, box=box), full[..., top:bottom, left:right], atol=1e-6)
    monkeypatch.setattr(metrics, "SSIM_BAND_PIXELS", 2 * 33 * 3 * 7)  # bands of 7 rows
    assert torch.allclose(ssim(a, b), full.mean(dim=(1, 2, 3)), atol=1e-6)
    with pytest.raises(ValueError):
        ssim_map(a, b, box=(5, 5, 0, 10))


# --- region_perceptibility -------------------------------------------------------------


def _disk(h: int, w: int, cy: float, cx: float, r: float) -> Tensor:
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


@pytest.fixture
def scene() -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """An 8-bit image, a disk mask, and a change known exactly inside the disk.

    Inside the disk, red moves by +4 levels on even pixels ((i + j) even) and green by
    +0.3 levels (below :data:`CHANGED_LEVEL`) on odd ones; nothing else changes.
    """
    h, w = 64, 80
    g = torch.Generator().manual_seed(3)
    x = _levels(0.1 + 0.8 * torch.rand(1, 3, h, w, generator=g))
    mask = _disk(h, w, 30, 36, 14)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    even = ((yy + xx) % 2 == 0) & mask
    odd = ((yy + xx) % 2 == 1) & mask
    x_adv = x.clone()
    x_adv[0, 0][even] += 4 / 255
    x_adv[0, 1][odd] += 0.3 / 255
    n, n_even, n_odd = int(mask.sum()), int(even.sum()), int(odd.sum())
    mse = ((4 / 255) ** 2 * n_even + (0.3 / 255) ** 2 * n_odd) / (3 * n)
    expected = {
        "psnr": 10 * math.log10(1 / mse),
        "linf_255": 4.0,
        "changed_fraction": n_even / n,
        "pixels": n,
    }
    return x_adv, x, mask, expected


def test_region_values_match_the_analytic_change(
    scene: tuple[Tensor, Tensor, Tensor, dict[str, float]],
) -> None:
    x_adv, x, mask, expected = scene
    r = region_perceptibility(x_adv, x, mask, st_lpips_net=None)
    assert r["psnr"] == pytest.approx(expected["psnr"], abs=1e-4)
    assert r["linf_255"] == pytest.approx(4.0, abs=1e-4)
    assert r["changed_fraction"] == expected["changed_fraction"]
    assert r["pixels"] == expected["pixels"] and isinstance(r["pixels"], int)
    delta_e = ciede2000(x_adv, x)[0][mask]
    assert r["ciede2000_mean"] == pytest.approx(float(delta_e.mean()), rel=1e-5)
    assert r["ciede2000_p95"] == pytest.approx(float(torch.quantile(delta_e, 0.95)), rel=1e-5)
    assert r["ssim"] == pytest.approx(float(ssim_map(x_adv, x)[0][:, mask].mean()), abs=1e-6)
    assert 0 < r["ciede2000_mean"] < r["ciede2000_p95"]
    assert r["ssim"] < 1
    assert set(r) == {
        "psnr",
        "ssim",
        "linf_255",
        "ciede2000_mean",
        "ciede2000_p95",
        "changed_fraction",
        "pixels",
    }


def test_region_ignores_changes_outside_the_mask(
    scene: tuple[Tensor, Tensor, Tensor, dict[str, float]],
) -> None:
    x_adv, x, mask, _ = scene
    base = region_perceptibility(x_adv, x, mask, st_lpips_net=None)
    # Scramble every pixel outside the disk (inside its bounding box too).
    g = torch.Generator().manual_seed(4)
    noisy = torch.where(mask, x_adv, _levels(torch.rand(x.shape, generator=g)))
    r = region_perceptibility(noisy, x, mask, st_lpips_net=None)
    for key in ("psnr", "linf_255", "ciede2000_mean", "ciede2000_p95", "changed_fraction"):
        assert r[key] == pytest.approx(base[key], rel=1e-6), key
    assert r["pixels"] == base["pixels"]
    # SSIM sees a window's reach around the region, but nothing beyond it.
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    near = torch.zeros_like(mask)
    near[rows[0] - 5 : rows[-1] + 6, cols[0] - 5 : cols[-1] + 6] = True
    far_noisy = torch.where(near, x_adv, _levels(torch.rand(x.shape, generator=g)))
    far = region_perceptibility(far_noisy, x, mask, st_lpips_net=None)
    assert far == pytest.approx(base, rel=1e-6)


def test_region_whole_image_and_mask_forms(
    scene: tuple[Tensor, Tensor, Tensor, dict[str, float]],
) -> None:
    x_adv, x, mask, _ = scene
    whole = region_perceptibility(x_adv, x, st_lpips_net=None)
    assert whole["pixels"] == 64 * 80
    assert whole["psnr"] == pytest.approx(float(psnr(x_adv, x)), abs=1e-3)
    assert whole["ssim"] == pytest.approx(float(ssim(x_adv, x)), abs=1e-6)
    ones = region_perceptibility(x_adv, x, torch.ones(1, 1, 64, 80), st_lpips_net=None)
    assert ones == pytest.approx(whole)
    as_float = region_perceptibility(x_adv, x, mask[None, None].float(), st_lpips_net=None)
    assert as_float == pytest.approx(region_perceptibility(x_adv, x, mask, st_lpips_net=None))


def test_region_identical_images() -> None:
    x = torch.rand(1, 3, 30, 30)
    r = region_perceptibility(x, x.clone(), _disk(30, 30, 15, 15, 8), st_lpips_net=None)
    assert r["psnr"] == math.inf
    assert r["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert r["linf_255"] == 0 and r["ciede2000_mean"] == 0 and r["ciede2000_p95"] == 0
    assert r["changed_fraction"] == 0


def test_region_rejects_bad_input() -> None:
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="empty"):
        region_perceptibility(x, x, torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="0 and 1"):
        region_perceptibility(x, x, torch.full((8, 8), 0.5))
    with pytest.raises(ValueError, match="mask"):
        region_perceptibility(x, x, torch.ones(7, 8))
    with pytest.raises(ValueError, match="one RGB image"):
        region_perceptibility(x.expand(2, -1, -1, -1), x.expand(2, -1, -1, -1))
    with pytest.raises(ValueError, match="st_lpips_net"):
        region_perceptibility(x, x, st_lpips_net="squeeze")


def test_changed_level_is_half_a_level() -> None:
    assert math.isclose(CHANGED_LEVEL * 255, 0.5)


# --- ST-LPIPS -------------------------------------------------------------------------


def test_st_lpips_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    stlpips._st_lpips_model.cache_clear()
    monkeypatch.setattr(stlpips, "st_lpips_available", lambda: False)
    monkeypatch.setattr(perceptual, "st_lpips_available", lambda: False)
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ModuleNotFoundError, match=r"stlpips-pytorch==0\.0\.2"):
        st_lpips(x, x)
    assert "st_lpips" not in region_perceptibility(x, x)
    stlpips._st_lpips_model.cache_clear()


def _face() -> Tensor:
    array = np.array(Image.open(FACE).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None]


@needs_st_lpips
def test_st_lpips_loads_silently_offline_and_checked(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("ST-LPIPS tried to open a network connection")

    ipython_installed = importlib.util.find_spec("IPython") is not None
    stlpips._st_lpips_model.cache_clear()
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    x = torch.rand(2, 3, 32, 32)
    d = st_lpips(x, x)
    assert torch.equal(d, torch.zeros(2))
    assert capfd.readouterr().out == ""
    if not ipython_installed:  # the stand-in was only there during the import
        assert "IPython" not in sys.modules


@needs_st_lpips
def test_st_lpips_weight_check_fails_loudly() -> None:
    package = stlpips._import_stlpips()
    model = stlpips._st_lpips_model("alex", torch.device("cpu"))
    path = Path(str(package.__file__)).parent / "weights" / "vST0.0" / "alex_shift_tolerant.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    stlpips._check_weights_cover(model, state, path)  # the real file covers everything
    missing = {k: v for k, v in state.items() if k != "lin2.model.1.weight"}
    with pytest.raises(RuntimeError, match=r"missing \['lin2\.model\.1\.weight'\]"):
        stlpips._check_weights_cover(model, missing, path)
    with pytest.raises(RuntimeError, match="unexpected"):
        stlpips._check_weights_cover(model, {**state, "extra.weight": torch.zeros(1)}, path)
    wrong = {**state, "lin0.model.1.weight": torch.zeros(1, 3, 1, 1)}
    with pytest.raises(RuntimeError, match="shape mismatches"):
        stlpips._check_weights_cover(model, wrong, path)
    # Loaded: every tensor is the file's, under both names of each linear head.
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert torch.equal(own["lins.0.model.1.weight"], state["lin0.model.1.weight"])


@needs_st_lpips
def test_st_lpips_zero_for_identical_and_grows_with_noise() -> None:
    x = _face()
    g = torch.Generator().manual_seed(5)
    noise = torch.randn(x.shape, generator=g)
    with torch.no_grad():
        assert float(st_lpips(x, x.clone())[0]) == 0.0
        scores = [float(st_lpips(x, (x + s / 255 * noise).clamp(0, 1))[0]) for s in (2, 8, 32)]
    assert 0 < scores[0] < scores[1] < scores[2]


@needs_st_lpips
def test_st_lpips_tolerates_a_one_pixel_shift() -> None:
    face = _face()  # 128 x 128
    x = face[..., 0:126, 0:126]
    g = torch.Generator().manual_seed(6)
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        shifted = face[..., dy : dy + 126, dx : dx + 126]
        rmse = (shifted - x).square().mean().sqrt()
        noisy = (x + rmse * torch.randn(x.shape, generator=g)).clamp(0, 1)
        assert float(metrics.psnr(noisy, x)) == pytest.approx(
            float(metrics.psnr(shifted, x)), abs=0.5
        )
        with torch.no_grad():
            shift_score, noise_score = float(st_lpips(x, shifted)), float(st_lpips(x, noisy))
        assert shift_score < 0.1 * noise_score, (dy, dx, shift_score, noise_score)


@needs_st_lpips
def test_st_lpips_batch_gradient_and_sizes() -> None:
    g = torch.Generator().manual_seed(7)
    a = torch.rand(3, 3, 24, 30, generator=g)
    b = torch.rand(3, 3, 24, 30, generator=g, requires_grad=True)
    d = st_lpips(a, b)
    assert d.shape == (3,) and d.dtype == torch.float32 and (d > 0).all()
    with torch.no_grad():
        for i in range(3):
            one = float(st_lpips(a[i : i + 1], b[i : i + 1]))
            assert one == pytest.approx(float(d[i].detach()), rel=1e-4)
    d.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    side = ST_LPIPS_MIN_SIZE["alex"]
    st_lpips(a[..., :side, :side], a[..., :side, :side])
    with pytest.raises(ValueError, match="at least"):
        st_lpips(a[..., : side - 1, :], a[..., : side - 1, :])
    with pytest.raises(ValueError, match="net"):
        st_lpips(a, a, net="squeeze")


@needs_st_lpips
def test_region_includes_st_lpips_on_the_bounding_box(
    scene: tuple[Tensor, Tensor, Tensor, dict[str, float]],
) -> None:
    x_adv, x, mask, _ = scene
    r = region_perceptibility(x_adv, x, mask)
    rows, cols = mask.any(dim=1).nonzero().flatten(), mask.any(dim=0).nonzero().flatten()
    t, b, le, ri = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    with torch.no_grad():
        expected = float(st_lpips(x_adv[..., t:b, le:ri], x[..., t:b, le:ri]))
    assert r["st_lpips"] == pytest.approx(expected, rel=1e-5) and r["st_lpips"] > 0
    small = region_perceptibility(x_adv, x, _disk(64, 80, 30, 36, 5))  # 11 x 11 box
    assert "st_lpips" not in small


@needs_st_lpips
@pytest.mark.slow
def test_st_lpips_vgg() -> None:
    x = _face()[..., :64, :64]
    g = torch.Generator().manual_seed(8)
    with torch.no_grad():
        assert float(st_lpips(x, x, net="vgg")) == 0.0
        assert (
            float(
                st_lpips(x, (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1), net="vgg")
            )
            > 0
        )
