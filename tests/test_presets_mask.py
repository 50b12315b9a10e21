"""Strength presets, explicit overrides, masks (API and CLI), and the attack's start point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from attacks import Attack, ifgsm, run_attack
from disrupt.api import DEFAULT_EPS, protect
from disrupt.cli import app
from disrupt.errors import ImageError
from disrupt.masking import MaskedObjective, apply_mask, load_mask
from disrupt.presets import STRENGTHS, UNIVERSAL_REFINE_STEPS, resolve_budget

runner = CliRunner()

#: The documented table (disrupt.presets docstring): eps in /255, attack, steps, EOT, samples.
DOCUMENTED = {
    "low": (4, "pgd", 10, False, 1),
    "mid": (8, "pgd", 20, True, 1),
    "high": (12, "pgd", 40, True, 2),
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
    eps255, attack, steps, eot, samples = DOCUMENTED[name]
    preset = STRENGTHS[name]
    assert (round(preset.eps * 255), preset.attack, preset.steps, preset.eot,
            preset.eot_samples) == DOCUMENTED[name]
    budget = resolve_budget(name)
    assert budget.attack.eps == pytest.approx(eps255 / 255)
    assert (budget.attack.name, budget.attack.steps, budget.eot, budget.eot_samples) == (
        attack, steps, eot, samples)


def test_mid_is_the_default_everywhere() -> None:
    assert resolve_budget().strength == "mid"
    assert pytest.approx(8 / 255) == DEFAULT_EPS


def test_explicit_options_override_the_preset() -> None:
    b = resolve_budget("high", eps=2 / 255, steps=3, eot=False)
    assert (b.attack.eps, b.attack.steps, b.eot) == (pytest.approx(2 / 255), 3, False)
    b = resolve_budget("low", attack="mifgsm")
    assert (b.attack.name, b.attack.eps, b.attack.steps) == ("mifgsm", pytest.approx(4 / 255), 10)
    b = resolve_budget("mid", attack="fgsm")  # takes no steps: the preset's are not forced
    assert (b.attack.name, b.attack.steps, b.eot) == ("fgsm", 1, True)
    ready = ifgsm(3 / 255, steps=4)
    assert resolve_budget("high", attack=ready).attack is ready
    u = resolve_budget("mid", universal=True)
    assert u.attack.steps == UNIVERSAL_REFINE_STEPS and u.attack.alpha == pytest.approx(2 / 255)


def test_bad_strength_and_options_are_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        resolve_budget("extreme")
    with pytest.raises(ValueError, match="steps"):
        resolve_budget("mid", attack="fgsm", steps=3)


def test_protect_reports_the_preset_and_overrides() -> None:
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    r = protect(x, targets=["stargan.tiny"], strength="low", steps=2)
    assert (r.strength, r.eot, r.attack.steps) == ("low", False, 2)
    assert r.attack.eps == pytest.approx(4 / 255)
    assert r.perceptibility["linf_255"] <= 4 + 1e-4
    d = r.to_dict()
    assert d["strength"] == "low" and d["eot"] is False and d["attack"]["steps"] == 2


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
    assert data["attack"]["eps_255"] == pytest.approx(4)
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
