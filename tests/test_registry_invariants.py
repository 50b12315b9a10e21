"""The target contract, checked on every registered target that loads without a checkpoint.

Tiny random-init targets and the bundled models are all built here by name, so a
new built-in or plugin is tested by registering it.
"""

from __future__ import annotations

import pytest
import torch

from attacks import create_attack, quantize_to_uint8_within
from disrupt.objectives import AwayFromClean
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


@pytest.mark.parametrize("name", LOADABLE)
def test_attack_bound_gradients_and_progress(name: str) -> None:
    target = load_target(name)
    x = _images(1)
    objective = AwayFromClean(target, x)
    attack = create_attack("pgd", eps=8 / 255, steps=3)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        x_adv = attack(x, objective, generator=torch.Generator().manual_seed(0))
        saved = quantize_to_uint8_within(x_adv, x, attack.eps)
        score = objective(saved)
    assert (saved - x).abs().max() <= attack.eps + 1e-6
    assert torch.equal(saved, (saved * 255).round() / 255)
    assert not x_adv.requires_grad and x.grad is None
    if isinstance(target, GeneratorTarget):
        assert all(p.grad is None for p in target.generator.parameters())
    assert score.item() > 0, "the attack must move the output away from the clean one"


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
