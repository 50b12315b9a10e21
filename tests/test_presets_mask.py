"""Strength presets, explicit overrides, masks (API and CLI), and the attack's start point."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from attacks import Attack, ifgsm, run_attack
from disrupt.api import DEFAULT_EPS, ProtectResult, protect
from disrupt.cli import app
from disrupt.core.budget import STRENGTHS, UNIVERSAL_REFINE_STEPS, resolve_budget
from disrupt.core.masking import MaskedObjective, apply_mask, load_mask
from disrupt.errors import ImageError

runner = CliRunner()

#: The documented table (disrupt.core.budget docstring): max change in /255, attack, steps, EOT,
#: samples, PSNR floor in dB.
DOCUMENTED = {
    "low": (8, "pgd", 10, False, 1, 37.0),
    "mid": (16, "pgd", 20, True, 1, 33.0),
    "high": (24, "pgd", 40, True, 2, 30.0),
}


def _photo(path: Path, size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _mask_file(path: Path, size: tuple[int, int] = (48, 40)) -> Path:
    arr = np.zeros((size[1], size[0]), dtype=np.uint8)
    arr[:, : size[0] // 2] = 255  # left half: protect
    Image.fromarray(arr).save(path)
    return path


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_presets_match_the_documented_budgets(name: str) -> None:
    eps255, attack, steps, eot, samples, psnr = DOCUMENTED[name]
    preset = STRENGTHS[name]
    assert (round(preset.eps * 255), preset.attack, preset.steps, preset.eot,
            preset.eot_samples, preset.psnr) == DOCUMENTED[name]
    budget = resolve_budget(name)
    assert budget.attack.eps == pytest.approx(eps255 / 255)
    assert (budget.attack.name, budget.attack.steps, budget.eot, budget.eot_samples,
            budget.psnr) == (attack, steps, eot, samples, psnr)
    # On a 100x100 photo: L2 radius for the PSNR floor over 3e4 values, capped per pixel.
    run = budget.attack_for(3 * 100 * 100)
    assert run.norm == "l2" and run.linf_cap == pytest.approx(eps255 / 255)
    assert run.eps == pytest.approx(10 ** (-psnr / 20) * 100 * 3**0.5)
    assert run.alpha == pytest.approx(run.eps * min(1.0, 2.5 / steps))


def test_mid_is_the_default_everywhere() -> None:
    assert resolve_budget().strength == "mid"
    assert pytest.approx(16 / 255) == DEFAULT_EPS


def test_explicit_options_override_the_preset() -> None:
    b = resolve_budget("high", eps=2 / 255, steps=3, eot=False)
    assert (b.attack.eps, b.attack.steps, b.eot) == (pytest.approx(2 / 255), 3, False)
    b = resolve_budget("low", attack="mifgsm")
    assert (b.attack.name, b.attack.eps, b.attack.steps) == ("mifgsm", pytest.approx(8 / 255), 10)
    b = resolve_budget("mid", attack="fgsm")  # takes no steps: the preset's are not forced
    assert (b.attack.name, b.attack.steps, b.eot) == ("fgsm", 1, True)
    ready = ifgsm(3 / 255, steps=4)
    assert resolve_budget("high", attack=ready).attack is ready
    assert resolve_budget("high", attack=ready).attack_for(300) is ready  # no floor given
    capped = resolve_budget("high", attack=ready, psnr=35).attack_for(300)
    assert (capped.name, capped.norm, capped.linf_cap) == ("ifgsm", "l2", pytest.approx(3 / 255))
    u = resolve_budget("mid", universal=True)
    assert u.attack.steps == UNIVERSAL_REFINE_STEPS
    assert u.attack_for(300).alpha == pytest.approx(u.attack_for(300).eps / 4)
    plain = resolve_budget("mid", psnr=0, alpha=1 / 255)
    assert (plain.psnr, plain.attack.norm, plain.attack.alpha) == (None, "linf",
                                                                 pytest.approx(1 / 255))
    assert plain.attack_for(300) is plain.attack


def test_bad_strength_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        resolve_budget("extreme")
    with pytest.raises(ValueError, match="steps"):
        resolve_budget("mid", attack="fgsm", steps=3)
    with pytest.raises(ValueError, match="alpha"):
        resolve_budget("mid", alpha=1 / 255)  # a step size is an L-inf notion here
    with pytest.raises(ValueError, match="psnr"):
        resolve_budget("mid", psnr=-3)
    with pytest.raises(ValueError, match="crops must be canonical or family"):
        resolve_budget("mid", crops="wide")


def test_every_preset_attacks_the_canonical_crop_unless_told() -> None:
    assert {resolve_budget(s).crops for s in ("low", "mid", "high")} == {"canonical"}
    assert resolve_budget("mid", crops="family").crops == "family"
    assert resolve_budget("mid", crops="family", protector=True).crops == "family"


def test_protect_reports_the_preset_and_overrides() -> None:
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    r = protect(x, targets=["stargan.tiny"], strength="low", steps=2)
    assert (r.strength, r.eot, r.attack.steps, r.psnr_floor) == ("low", False, 2, 37.0)
    assert r.attack.linf_cap == pytest.approx(8 / 255)
    assert r.perceptibility["linf_255"] <= 8 + 1e-4
    d = r.to_dict()
    assert d["strength"] == "low" and d["eot"] is False and d["attack"]["steps"] == 2
    assert d["attack"]["psnr_floor"] == 37.0 and d["attack"]["linf_cap_255"] == pytest.approx(8)
    plain = protect(x, targets=["stargan.tiny"], strength="low", steps=2, psnr=0)
    assert (plain.attack.norm, plain.psnr_floor) == ("linf", None)
    assert plain.attack.eps == pytest.approx(8 / 255)


@pytest.mark.parametrize("strength", ["low", "mid", "high"])
def test_the_psnr_floor_and_cap_hold_on_the_saved_image(strength: str) -> None:
    x = (torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(5)) * 255).round() / 255
    r = protect(x, targets=["stargan.tiny"], strength=strength, steps=4, eot=False, faces=False)
    preset = STRENGTHS[strength]
    assert preset.psnr is not None
    assert r.perceptibility["psnr"] >= preset.psnr - 1e-3
    assert r.perceptibility["linf_255"] <= preset.eps * 255 + 1e-4
    # The budget is spent, not left unused: within half a dB of the floor.
    assert r.perceptibility["psnr"] < preset.psnr + 0.5


def test_the_psnr_floor_counts_only_the_protected_pixels(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    mask = _mask_file(tmp_path / "m.png")
    r = protect(photo, targets=["stargan.tiny"], mask=mask, strength="mid", steps=4, eot=False)
    src = r.source.rgb
    half = torch.mean((r.image[..., :24] - src[..., :24]) ** 2)
    assert 10 * torch.log10(1 / half) >= 33 - 1e-3  # over the masked-in half
    assert r.perceptibility["psnr"] > 33 + 2  # over the whole photo: about 3 dB more


# ------------------------------------------------------------------------------ masks


def test_pixels_outside_the_mask_are_unchanged(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    mask = _mask_file(tmp_path / "m.png")
    r = protect(photo, targets=["stargan.tiny"], mask=mask, strength="low", steps=3)
    src = r.source.rgb
    assert r.masked
    assert torch.equal(r.image[..., 24:], src[..., 24:])  # black half: bit for bit
    assert (r.image[..., :24] != src[..., :24]).any()  # white half: protected


def test_a_grey_mask_scales_the_budget() -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x = (x * 255).round() / 255
    mask = torch.full((1, 1, 32, 32), 0.5)
    r = protect(x, targets=["stargan.tiny"], mask=mask, eps=8 / 255, steps=3, eot=False)
    assert r.perceptibility["linf_255"] <= 4 + 1e-4


def test_masked_objective_and_apply_mask() -> None:
    x = torch.rand(1, 3, 8, 8)
    x_adv = (x + 0.1).clamp(0, 1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0
    seen: list[torch.Tensor] = []

    def objective(z: torch.Tensor) -> torch.Tensor:
        seen.append(z)
        return z.sum(dim=(1, 2, 3))

    MaskedObjective(objective, x, mask)(x_adv)
    assert torch.equal(seen[0][..., 4:], x[..., 4:]) and torch.equal(seen[0][..., :4],
                                                                       x_adv[..., :4])
    out = apply_mask(x_adv, x, mask)
    assert torch.equal(out[..., 4:], x[..., 4:]) and torch.equal(out[..., :4], x_adv[..., :4])


def test_mask_of_the_wrong_size_names_the_file(tmp_path: Path) -> None:
    mask = _mask_file(tmp_path / "small.png", size=(10, 10))
    with pytest.raises(ImageError, match="small.png.*10x10.*48x40"):
        load_mask(mask, (48, 40))
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((40, 48), dtype=np.uint8)).save(black)
    with pytest.raises(ImageError, match="black.png.*black everywhere"):
        load_mask(black, (48, 40))


def test_cli_bad_mask_is_one_line_naming_the_file_exit_1(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    mask = _mask_file(tmp_path / "wrong.png", size=(12, 12))
    res = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", "--steps", "1",
                              "--mask", str(mask), "-q"])
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "wrong.png" in errors[0] and "12x12" in errors[0]
    missing = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", "--steps", "1",
                                  "--mask", str(tmp_path / "nope.png"), "-q"])
    assert missing.exit_code == 1 and "nope.png" in missing.stderr


def test_cli_mask_strength_and_faces_options(tmp_path: Path) -> None:
    photo = _photo(tmp_path / "p.png")
    mask = _mask_file(tmp_path / "m.png")
    res = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", "--steps", "1",
                              "--strength", "low", "--mask", str(mask), "--no-faces", "--json",
                              "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["strength"] == "low" and data["masked"] and data["face_status"] == "off"
    assert data["attack"]["linf_cap_255"] == pytest.approx(8)
    assert data["attack"]["psnr_floor"] == 37.0
    plain = runner.invoke(app, ["protect", str(photo), "-t", "stargan.tiny", "--steps", "1",
                                "--psnr", "0", "--eps", "3/255", "--no-faces", "--overwrite",
                                "--json", "-q"])
    assert plain.exit_code == 0, plain.output
    linf = json.loads(plain.stdout)["attack"]
    assert (linf["norm"], linf["eps_255"], linf["psnr_floor"]) == ("linf", pytest.approx(3), None)
    bad = runner.invoke(app, ["protect", str(photo), "--strength", "extreme"])
    assert bad.exit_code == 2 and "--strength" in bad.stderr


# ------------------------------------------------------------------------------ start point


def test_run_attack_starts_from_start_projected_into_the_ball() -> None:
    x = torch.full((1, 3, 4, 4), 0.5)
    start = x + 0.2  # outside an 8/255 ball

    def objective(z: torch.Tensor) -> torch.Tensor:
        return z.sum(dim=(1, 2, 3)) * 0  # zero gradient: the attack stays where it starts

    out = run_attack(x, objective, eps=8 / 255, alpha=1 / 255, steps=1, start=start,
                     random_start=True)
    assert torch.allclose(out, x + 8 / 255)
    atk = Attack(eps=8 / 255, alpha=1 / 255, steps=1)
    assert torch.allclose(atk(x, objective, start=start), x + 8 / 255)
    with pytest.raises(ValueError, match="start"):
        run_attack(x, objective, eps=8 / 255, alpha=1 / 255, steps=1, start=x[..., :2])


# --------------------------------------------------------------- perceptual caps (issue 9)


def test_texture_caps_keep_changes_off_flat_regions() -> None:
    from disrupt.core.masking import texture_caps

    g = torch.Generator().manual_seed(0)
    flat = torch.full((1, 3, 32, 32), 0.6)
    textured = (0.5 + 0.2 * torch.randn(1, 3, 32, 32, generator=g)).clamp(0, 1)
    photo = torch.cat([flat, textured], dim=-1)  # left half flat, right half textured
    caps = texture_caps(photo, 16 / 255)
    assert caps.shape == (1, 1, 32, 64)
    assert float(caps[..., 4:-4, 4:28].max()) == pytest.approx(1 / 255)  # away from the seam
    assert float(caps[..., 4:-4, 36:60].min()) == pytest.approx(16 / 255)


def test_perceptual_budget_puts_the_energy_in_texture(tmp_path: Path) -> None:
    from disrupt.imaging import reload_saved

    g = torch.Generator().manual_seed(1)
    flat = torch.full((1, 3, 48, 24), 0.55)
    textured = (0.5 + 0.15 * torch.randn(1, 3, 48, 24, generator=g)).clamp(0, 1)
    photo = ((torch.cat([flat, textured], dim=-1) * 255).round() / 255)
    energy = {}
    for perceptual in (False, True):
        out = tmp_path / f"p{perceptual}.png"
        r = protect(photo, targets=["stargan.tiny"], strength="mid", eot=False, steps=5,
                    perceptual=perceptual, output=out, seed=0)
        delta = (reload_saved(out) - photo).abs()
        energy[perceptual] = (float(delta[..., :24].square().sum()),
                              float(delta[..., 24:].square().sum()))
        assert float(delta[..., :, :22].max()) <= (1 / 255 if perceptual else 16 / 255) + 1e-6
        assert r.perceptibility["psnr"] >= 33 - 1e-3 and r.to_dict()["attack"]["perceptual"] \
            == perceptual
    flat_share = {p: e[0] / (e[0] + e[1]) for p, e in energy.items()}
    assert flat_share[True] < 0.25 * flat_share[False], flat_share


def test_high_pass_removes_colour_casts_and_never_adds_energy() -> None:
    from disrupt.core.masking import high_pass

    g = torch.Generator().manual_seed(2)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 48), indexing="ij")
    blotch = torch.exp(-(xx**2 + yy**2) / 0.2)  # a smooth patch, like a red cheek
    cast = torch.stack([8 * blotch, 0 * blotch, -4 * blotch])[None] / 255
    grain = (torch.rand(1, 3, 48, 48, generator=g) * 2 - 1) * 8 / 255
    for delta, kept in ((cast, 0.05), (grain, 0.6)):
        out = high_pass(delta, 2.0)
        ratio = float(out.norm() / delta.norm())
        assert ratio <= 1.0 + 1e-6
        assert (ratio < kept) if delta is cast else (ratio > kept), ratio


@pytest.mark.parametrize("sigma", [8.0, 14.0])
def test_wide_high_pass_goes_through_the_fft_and_matches_the_kernel(sigma: float) -> None:
    import kornia

    from disrupt.core.masking import FFT_BLUR_SIGMA, high_pass

    assert sigma > FFT_BLUR_SIGMA
    g = torch.Generator().manual_seed(3)
    delta = (torch.rand(1, 3, 130, 97, generator=g) * 2 - 1) * 8 / 255
    side = 2 * math.ceil(3 * sigma) + 1
    kernel = delta - kornia.filters.gaussian_blur2d(delta, (side, side), (sigma, sigma),
                                                    border_type="reflect")
    out = high_pass(delta, sigma)
    assert float((out - kernel).abs().max()) < 0.05 * 8 / 255  # kernel truncation only
    assert float(out.norm() / delta.norm()) <= 1.0 + 1e-6
    smooth = torch.ones(1, 3, 130, 97) * 4 / 255  # a flat colour cast
    assert float(high_pass(smooth, sigma).abs().max()) < 1e-5
    half = high_pass(delta.bfloat16(), sigma)  # e.g. under CUDA autocast
    assert half.dtype == torch.bfloat16
    assert float((half.float() - out).abs().max()) < 0.02 * float(delta.abs().max())


def test_coarse_high_pass_stays_close_to_the_exact_one_and_removes_casts() -> None:
    from disrupt.core.masking import COARSE_BLUR_SIGMA, high_pass, high_pass_coarse

    g = torch.Generator().manual_seed(4)
    delta = (torch.rand(1, 3, 301, 257, generator=g) * 2 - 1) * 8 / 255
    delta[..., 50:150, 60:160] += 4 / 255  # a blotch the filter must take out
    sigma = 20.0
    assert sigma > COARSE_BLUR_SIGMA
    exact, coarse = high_pass(delta, sigma), high_pass_coarse(delta, sigma)
    assert float((coarse - exact).abs().max()) < 0.02 * float(delta.abs().max())
    assert float((coarse - exact).norm() / exact.norm()) < 0.01
    flat = torch.ones(1, 3, 301, 257) * 4 / 255
    assert float(high_pass_coarse(flat, sigma).abs().max()) < 1e-5
    x = delta.clone().requires_grad_(True)
    (high_pass_coarse(x, sigma) * exact).sum().backward()  # differentiable for the attack
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    small = COARSE_BLUR_SIGMA  # at and below the switch: the exact filter itself
    assert torch.equal(high_pass_coarse(delta, small), high_pass(delta, small))


def test_blotch_sigma_follows_the_face_at_every_size() -> None:
    from disrupt.core.faces import Box
    from disrupt.core.pipeline import Plan, blotch_sigma

    def plan(side: int) -> Plan:
        box = Box(0, 0, side, side)
        return Plan([box], [box], "used", box, None, [box])

    assert blotch_sigma(plan(16)) == 1.0
    assert blotch_sigma(plan(160)) == pytest.approx(5.0)
    assert blotch_sigma(plan(990)) == pytest.approx(990 / 32)  # a 12 MP photo's face crop


def test_grain_sigma_is_a_third_of_a_model_pixel_and_can_be_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from disrupt.core import pipeline
    from disrupt.core.faces import Box
    from disrupt.core.pipeline import Plan, grain_sigma

    box = Box(0, 0, 89, 89)
    plan = Plan([box], [box], "used", box, None, [box])
    assert grain_sigma(plan) == pytest.approx(89 * 0.3 / 64)  # 0.42 px of a CelebA crop
    monkeypatch.setattr(pipeline, "GRAIN_SIGMA_PER_SIDE", None)
    assert grain_sigma(plan) is None


@pytest.mark.parametrize(("side", "finest_kept"), [(89, 0.7), (320, 0.05)])
def test_band_pass_drops_the_finest_grain_and_keeps_what_models_see(
        side: int, finest_kept: float) -> None:
    from disrupt.core.masking import high_pass, low_pass

    # A crop of `side` pixels shrunk to a 64 px model input: a one-pixel checkerboard
    # is averaged away by the shrink (the band-pass weakens it on an 89 px CelebA crop,
    # where a model pixel is 1.4 photo pixels, and removes it on a 320 px crop); a
    # pattern of 3 model pixels' period survives the shrink and the band-pass.
    sigma_high, sigma_low = side / 32, side * 0.3 / 64
    yy, xx = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)),
                            indexing="ij")
    finest = (((xx + yy) % 2) * 2 - 1).expand(1, 3, side, side) * 4 / 255
    visible = torch.sin(2 * math.pi * xx / (3 * side / 64)).expand(1, 3, side, side) * 4 / 255
    kept = {}
    for name, delta in (("finest", finest), ("visible", visible)):
        out = low_pass(high_pass(delta, sigma_high), sigma_low)
        kept[name] = float(out.norm() / delta.norm())
        assert kept[name] <= 1.0 + 1e-6
    assert kept["finest"] < finest_kept and kept["visible"] > 0.75, kept
    with pytest.raises(ValueError, match="sigma"):
        low_pass(finest, 0.0)


def _noisy_photo(side: int, seed: int) -> torch.Tensor:
    """A ``(1, 3, side, side)`` mid-grey photo with seeded noise, on the 8-bit grid."""
    g = torch.Generator().manual_seed(seed)
    noisy = (0.5 + 0.15 * torch.randn(1, 3, side, side, generator=g)).clamp(0, 1)
    return (noisy * 255).round() / 255


def _protect_whole_with_tiny_stargan(photo: torch.Tensor, steps: int) -> ProtectResult:
    """``mid`` against the tiny StarGAN, no EOT, no face search, seed 0."""
    return protect(photo, targets=["stargan.tiny"], strength="mid", eot=False, steps=steps,
                   faces=False, seed=0)


def test_perceptual_shaping_low_passes_the_saved_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from disrupt.core import pipeline

    # A 192 px photo protected whole: the model pixel is 3 photo pixels, the low-pass
    # sigma 0.9 of them.
    photo = _noisy_photo(192, seed=4)

    def nyquist_share() -> float:
        r = _protect_whole_with_tiny_stargan(photo, steps=4)
        spectrum = torch.fft.fft2(r.image - photo).abs().square().sum(dim=(0, 1))
        f = torch.fft.fftfreq(192).abs()
        high = (f[:, None] > 0.35) | (f[None, :] > 0.35)  # the outer band of frequencies
        return float(spectrum[high].sum() / spectrum.sum())

    with_low_pass = nyquist_share()
    monkeypatch.setattr(pipeline, "GRAIN_SIGMA_PER_SIDE", None)
    without = nyquist_share()
    assert with_low_pass < 0.7 * without, (with_low_pass, without)


def test_scale_chroma_keeps_the_grey_part_and_never_adds_energy() -> None:
    from disrupt.core.masking import scale_chroma

    delta = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    grey = scale_chroma(delta, 0.0)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert torch.allclose(grey.mean(dim=1), delta.mean(dim=1), atol=1e-6)
    assert torch.equal(scale_chroma(delta, 1.0), delta)
    half = scale_chroma(delta, 0.5)
    assert float(grey.norm()) < float(half.norm()) < float(delta.norm())
    with pytest.raises(ValueError, match="chroma share"):
        scale_chroma(delta, 1.5)


def test_a_grey_change_survives_jpeg_better_than_a_coloured_one() -> None:
    # JPEG halves the colour planes and quantises them coarsely: of two changes of the
    # same L2 norm and pattern (period 4 px), the grey one keeps more of itself.
    import io

    side = 64
    yy, xx = torch.meshgrid(torch.arange(float(side)), torch.arange(float(side)),
                            indexing="ij")
    pattern = torch.sin(2 * math.pi * xx / 4) * torch.sin(2 * math.pi * yy / 4)
    base = torch.full((3, side, side), 0.5)
    grey = pattern.expand(3, side, side) * 8 / 255
    colour = torch.stack([pattern, -pattern, torch.zeros_like(pattern)]) * 8 / 255
    colour = colour * grey.norm() / colour.norm()

    def jpeg(x: torch.Tensor) -> torch.Tensor:
        arr = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=75)
        return torch.from_numpy(np.asarray(Image.open(buf).convert("RGB"))).permute(
            2, 0, 1).float() / 255

    kept = {name: float((jpeg(base + d) - jpeg(base)).norm() / d.norm())
            for name, d in (("grey", grey), ("colour", colour))}
    assert kept["grey"] > 1.5 * kept["colour"], kept


def test_the_perceptual_shaping_can_keep_only_the_grey_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from disrupt.core import pipeline

    photo = _noisy_photo(96, seed=5)

    def colour_share() -> float:
        delta = _protect_whole_with_tiny_stargan(photo, steps=3).image - photo
        grey = delta.mean(dim=1, keepdim=True)
        return float((delta - grey).norm() / delta.norm())

    as_made = colour_share()
    monkeypatch.setattr(pipeline, "CHROMA_SHARE", 0.0)
    grey_only = colour_share()
    # What colour is left comes from 8-bit rounding and clipping at 0 and 1.
    assert grey_only < 0.1 < as_made, (grey_only, as_made)


def test_coarse_low_pass_agrees_on_what_the_models_see() -> None:
    from disrupt.core.masking import COARSE_LOW_PASS_SIGMA, low_pass, low_pass_coarse

    g = torch.Generator().manual_seed(6)
    # A change made of detail a 64 px model input can hold, on a 12 MP photo's scale
    # (a 990 px face crop: a model pixel is 15 photo pixels), and the grain sigma there.
    seen = torch.nn.functional.interpolate(torch.randn(1, 3, 40, 40, generator=g),
                                           size=(600, 600), mode="bicubic",
                                           align_corners=False) * 4 / 255
    sigma = 990 * 0.3 / 64
    assert sigma >= COARSE_LOW_PASS_SIGMA
    exact, coarse = low_pass(seen, sigma), low_pass_coarse(seen, sigma)
    assert float((coarse - exact).norm() / exact.norm()) < 0.02
    noise = (torch.rand(1, 3, 301, 257, generator=g) * 2 - 1) * 8 / 255
    assert float((low_pass_coarse(noise, sigma) - low_pass(noise, sigma)).norm()
                 / low_pass(noise, sigma).norm()) < 0.25  # grain: rougher, same scale
    x = noise.clone().requires_grad_(True)
    (low_pass_coarse(x, sigma) * noise).sum().backward()  # differentiable for the attack
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    small = 3.9  # under the switch: the exact filter itself
    assert torch.equal(low_pass_coarse(noise, small), low_pass(noise, small))
