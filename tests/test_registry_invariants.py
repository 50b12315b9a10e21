"""The target contract, checked on every registered target that loads without a checkpoint.

Tiny random-init targets and the bundled models are all built here by name, so a
new built-in or plugin is tested by registering it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attacks import Objective, create_attack, quantize_to_uint8_within
from disrupt.api import protect
from disrupt.core.budget import DEFAULT_STRENGTH, STRENGTHS, resolve_budget
from disrupt.core.objectives import AwayFromClean
from disrupt.core.pipeline import perturb, plan_protection
from targets import GeneratorTarget, list_targets, load_target, register_target
from targets import registry as target_registry

LOADABLE = [info.name for info in list_targets() if not info.needs_weights]


def _images(b: int = 2, h: int = 40, w: int = 48) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(0))


def test_every_family_has_a_loadable_variant() -> None:
    families = {name.split(".")[0] for name in LOADABLE}
    assert {"stargan", "ganimation", "attgan", "pix2pix", "cyclegan"} <= families


@pytest.mark.parametrize("name", LOADABLE)
def test_contract(name: str) -> None:
    target = load_target(name)
    assert target.conditions, "at least one condition"
    x = _images()
    before = x.clone()
    buffers = {k: v.clone() for k, v in target.generator.state_dict().items()} \
        if isinstance(target, GeneratorTarget) else {}
    torch.manual_seed(0)
    for cond in target.conditions:
        y = target(x, cond.vector)
        assert y.ndim == 4 and y.shape[:2] == (2, 3)
        assert target.input_size is None or tuple(y.shape[-2:]) == tuple(target.input_size)
        assert torch.isfinite(y).all() and y.min() >= -1e-5 and y.max() <= 1 + 1e-5
    assert torch.equal(x, before), "the input must not be modified"
    if isinstance(target, GeneratorTarget):
        assert all(not p.requires_grad for p in target.generator.parameters())
        after = target.generator.state_dict()
        assert all(torch.equal(buffers[k], after[k]) for k in buffers), "buffers changed"


def _score(objective: Objective, x: torch.Tensor) -> float:
    """``objective(x)`` with torch's global RNG seeded: a stochastic generator (pix2pix's
    dropout) then draws the same masks for every point compared, as for the clean output."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        return float(objective(x).item())


@pytest.mark.parametrize("name", LOADABLE)
def test_attack_bound_gradients_and_progress(name: str) -> None:
    target = load_target(name)
    x = _images(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        objective = AwayFromClean(target, x)
    attack = create_attack("pgd", eps=8 / 255, steps=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x_adv = attack(x, objective, generator=torch.Generator().manual_seed(0))
    saved = quantize_to_uint8_within(x_adv, x, attack.eps)
    assert (saved - x).abs().max() <= attack.eps + 1e-6
    assert torch.equal(saved, (saved * 255).round() / 255)
    assert not x_adv.requires_grad and x.grad is None
    if isinstance(target, GeneratorTarget):
        assert all(p.grad is None for p in target.generator.parameters())
    # Progress: the attack beats random perturbations of the same L-inf size (random signs,
    # +-eps at every pixel: the largest random change the budget allows), by a margin.
    noise = []
    for seed in range(3):
        signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        noisy = quantize_to_uint8_within((x + signs * attack.eps).clamp(0, 1), x, attack.eps)
        noise.append(_score(objective, noisy))
    score = _score(objective, saved)
    assert score > 2 * max(noise), f"{name}: attack {score:.3g} vs same-size noise {noise}"


@pytest.mark.parametrize("name", LOADABLE)
def test_batch_equals_per_item(name: str) -> None:
    target = load_target(name)
    if not getattr(target, "batch_independent", True):
        pytest.skip(f"{name}: BatchNorm in train mode mixes a batch by design")
    x = _images(3)
    cond = target.conditions[-1].vector
    together = target(x, cond)
    alone = torch.cat([target(x[i : i + 1], cond) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def _stochastic(target: object) -> bool:
    """Whether a call draws random numbers: a dropout layer active (train mode)."""
    return isinstance(target, GeneratorTarget) and any(
        isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.training
        for m in target.generator.modules()
    )


def test_the_registry_has_a_stochastic_loadable_target() -> None:
    # So the "another seed gives another output" branch below is exercised (pix2pix).
    assert any(_stochastic(load_target(name)) for name in LOADABLE)


@pytest.mark.parametrize("name", LOADABLE)
def test_seeded_calls_repeat_and_only_random_layers_follow_the_seed(name: str) -> None:
    target = load_target(name)
    x = _images()
    cond = target.conditions[-1].vector

    def call(seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            return target(x, cond)

    first = call(0)
    assert torch.equal(first, call(0)), "same seed, same output"
    if _stochastic(target):
        assert not torch.equal(first, call(1)), "dropout draws follow torch's global seed"
    else:
        assert torch.equal(first, call(1)), "no random layer: the seed must not matter"


def _photo(h: int = 40, w: int = 48) -> np.ndarray:
    """An 8-bit photo ``(h, w, 3)``: what protect() gets from a file."""
    return np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", LOADABLE)
def test_seeded_protection_repeats(name: str) -> None:
    target = load_target(name)
    x = torch.from_numpy(_photo()).permute(2, 0, 1)[None].float() / 255
    plan = plan_protection(x, [target], faces=False)
    budget = resolve_budget(steps=1)  # the default: L2 PGD (random start) with EOT draws

    def run(outside_state: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(outside_state)  # whatever the caller's RNG was: no effect
            return perturb(x, [target], budget, plan, seed=3)[0]

    assert torch.equal(run(1), run(2))


LINF_EPS = 4 / 255
# (name, budget): the default preset (an L2 budget: a PSNR floor over the protected pixels,
# with a per-pixel cap) on the whole photo and under a mask, and plain L-inf (psnr=0).
SAVED_CASES = [(n, b) for n in LOADABLE for b in ("preset", "linf")] + [
    (n, "preset-masked") for n in ("stargan.tiny", "pix2pix.tiny")
]


@pytest.mark.parametrize(("name", "budget"), SAVED_CASES)
def test_saved_png_keeps_the_budget(name: str, budget: str, tmp_path: Path) -> None:
    photo = _photo()
    h, w, _ = photo.shape
    protected = np.ones((h, w), dtype=bool)
    mask = None
    if budget == "preset-masked":
        protected[:, w // 2 :] = False  # the right half must stay exactly as it was
        mask = Image.fromarray(np.where(protected, 255, 0).astype(np.uint8), "L")
    options = {"psnr": 0, "eps": LINF_EPS} if budget == "linf" else {}
    out = tmp_path / "protected.png"
    r = protect(photo, targets=[name], steps=2, eot=False, faces=False, mask=mask,
                output=out, **options)  # type: ignore[arg-type]

    saved = np.asarray(Image.open(out).convert("RGB"))  # what the user gets, reloaded
    assert saved.shape == photo.shape
    assert np.array_equal(saved, (r.image[0].permute(1, 2, 0).numpy() * 255).round())
    levels = saved.astype(np.int64) - photo.astype(np.int64)  # 8-bit levels
    delta = levels / 255.0
    assert levels[protected].any(), "the protected pixels were changed"
    assert not levels[~protected].any(), "pixels outside the mask must stay bit for bit"
    linf = np.abs(levels).max()
    assert r.perceptibility["linf_255"] == pytest.approx(linf, abs=1e-3)

    if budget == "linf":
        assert r.psnr_floor is None and r.attack.norm == "linf"
        assert r.attack.eps == pytest.approx(LINF_EPS)
        assert linf <= round(LINF_EPS * 255)
        return
    preset = STRENGTHS[DEFAULT_STRENGTH]
    assert preset.psnr is not None
    assert r.psnr_floor == preset.psnr and r.attack.norm == "l2"
    assert r.attack.linf_cap == pytest.approx(preset.eps)
    # The L2 radius comes from the floor over the protected values only (3 per pixel).
    values = 3 * int(protected.sum())
    assert r.attack.eps == pytest.approx(10 ** (-preset.psnr / 20) * math.sqrt(values))
    assert linf <= round(preset.eps * 255), "the per-pixel cap"
    assert math.sqrt(float(np.square(delta).sum())) <= r.attack.eps + 1e-9
    psnr = 10 * math.log10(1 / float(np.square(delta[protected]).mean()))
    assert psnr >= preset.psnr, f"PSNR {psnr:.3f} dB over the protected pixels"
    assert psnr < preset.psnr + 1.0, "the budget is spent, not left unused"


def test_plugin_targets_load_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def register() -> None:
        calls.append(1)

        @register_target("plugin.identity", description="test plugin")
        def _factory(weights):  # type: ignore[no-untyped-def]
            return GeneratorTarget("plugin.identity", torch.nn.Identity(), value_range=(0, 1))

    class FakeEntryPoint:
        value = "my_plugin:register"

        def load(self):  # type: ignore[no-untyped-def]
            return register

    monkeypatch.setattr(target_registry, "_loaded", False)
    monkeypatch.setattr(target_registry, "_REGISTRY", dict(target_registry._REGISTRY))
    monkeypatch.setattr(target_registry, "entry_points", lambda group: [FakeEntryPoint()])
    target = load_target("plugin.identity")
    assert calls == [1]
    x = _images(1)
    assert torch.equal(target(x, None), x)
    with pytest.raises(ValueError, match="already registered"):
        register()
