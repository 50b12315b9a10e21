"""Invariants of the attack loop, parametrized over every registered attack."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import Tensor

import attacks
from attacks import (
    Attack,
    UnknownAttackError,
    create_attack,
    default_alpha,
    fgsm,
    list_attacks,
    quantize_to_uint8_within,
    register_attack,
    run_attack,
)
from attacks import registry as registry_module
from disrupt.core.objectives import AwayFromClean
from targets.base import GeneratorTarget

ATTACKS = [name for name, _ in list_attacks()]
EPS = {"linf": 8 / 255, "l2": 0.5}
NORMS = list(EPS)
TOL = 1e-6  # float rounding in x + delta - x


def _seed(s: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(s)


def _dist(a: Tensor, b: Tensor, norm: str) -> Tensor:
    d = (a - b).flatten(1)
    return d.abs().amax(dim=1) if norm == "linf" else d.norm(dim=1)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_budget_range_input_and_no_gradient_leaks(
    name: str, norm: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    x = images.clone()
    objective = AwayFromClean(cond_target, x)
    x_adv = create_attack(name, eps=EPS[norm], norm=norm)(x, objective, generator=_seed())  # type: ignore[arg-type]
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert torch.equal(x, images)  # input untouched
    assert (_dist(x_adv, x, norm) <= EPS[norm] + TOL).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad and x_adv.grad_fn is None
    assert x.grad is None and not x.requires_grad
    assert all(p.grad is None and not p.requires_grad for p in cond_target.parameters())
    assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("name", ATTACKS)
def test_quantized_output_stays_within_linf_budget(
    name: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    eps = 4 / 255
    x_adv = create_attack(name, eps=eps)(
        images, AwayFromClean(cond_target, images), generator=_seed()
    )
    q = quantize_to_uint8_within(x_adv, images, eps)
    assert (q - images).abs().max() <= eps + TOL
    levels = q * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert (levels.round() - (x_adv * 255).round()).abs().max() <= 1  # at most one level moved


def test_quantize_moves_offending_pixels_one_level_toward_x() -> None:
    eps = 2 / 255
    x = torch.tensor([0.3, 0.3, 0.7, 10.0, 0.0]).div(255).view(1, 1, 1, 5)
    x_adv = (x + torch.tensor([eps, -eps, eps, -eps, eps]).view(1, 1, 1, 5)).clamp(0, 1)
    plain = (x_adv * 255).round() / 255
    assert ((plain - x).abs() > eps + TOL).any()  # naive rounding breaks the budget
    q = quantize_to_uint8_within(x_adv, x, eps)
    assert (q - x).abs().max() <= eps + TOL
    assert torch.equal((q * 255).round(), torch.tensor([2.0, 0.0, 2.0, 8.0, 2.0]).view(1, 1, 1, 5))


@pytest.mark.parametrize("name", ATTACKS)
def test_quantized_output_stays_within_l2_budget(
    name: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    eps = 0.3  # small against the rounding noise of an off-grid x: naive rounding exceeds it
    attack = create_attack(name, eps=eps, norm="l2")
    x_adv = attack(images, AwayFromClean(cond_target, images), generator=_seed())
    assert (_dist((x_adv * 255).round() / 255, images, "l2") > eps).any()
    q = quantize_to_uint8_within(x_adv, images, eps, norm="l2")
    assert (_dist(q, images, "l2") <= eps + TOL).all()
    levels = q * 255
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert ((levels - x_adv * 255).abs() < 1 + 1e-4).all()  # a neighbouring level of x_adv


def test_quantize_keeps_in_budget_images_on_the_grid_unchanged() -> None:
    g = _seed(2)
    x = torch.randint(0, 256, (2, 3, 8, 8), generator=g).float() / 255
    x_adv = (x + torch.randint(-4, 5, x.shape, generator=g) / 255).clamp(0, 1)
    for norm, eps in (("linf", 4 / 255), ("l2", _dist(x_adv, x, "l2").max().item())):
        q = quantize_to_uint8_within(x_adv, x, eps, norm=norm)  # type: ignore[arg-type]
        assert torch.equal((q * 255).round(), (x_adv * 255).round())


def test_quantize_rejects_eps_below_half_a_level(images: Tensor) -> None:
    with pytest.raises(ValueError, match="0.5/255"):
        quantize_to_uint8_within(images, images, 0.4 / 255)


@pytest.mark.parametrize("name", [n for n in ATTACKS if create_attack(n, eps=0.1).steps > 1])
def test_iterative_attacks_raise_the_objective(
    name: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    # An objective that is not zero at x, so "rises" means something.
    objective = AwayFromClean(cond_target, images.flip(-1))
    x_adv = create_attack(name, eps=8 / 255)(images, objective, generator=_seed())
    assert (objective(x_adv) > objective(images)).all()


def test_pgd_beats_fgsm_on_average(cond_target: GeneratorTarget, images: Tensor) -> None:
    eps = 8 / 255
    objective = AwayFromClean(cond_target, images)
    strong = create_attack("pgd", eps=eps)(images, objective, generator=_seed())
    weak = create_attack("fgsm", eps=eps)(images, objective)
    with torch.no_grad():
        assert objective(strong).mean() >= objective(weak).mean()


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", [n for n in ATTACKS if not create_attack(n, eps=0.1).random_start])
def test_batch_equals_per_item(
    name: str, norm: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    attack = create_attack(name, eps=EPS[norm], norm=norm)  # type: ignore[arg-type]
    batch = attack(images, AwayFromClean(cond_target, images))
    for i in range(images.shape[0]):
        xi = images[i : i + 1]
        alone = attack(xi, AwayFromClean(cond_target, xi))
        # sign() of a gradient within float noise of 0 may flip: allow a rare pixel
        mismatch = (alone - batch[i : i + 1]).abs() > 1e-5
        assert mismatch.float().mean() < 1e-3


RANDOM_START = [n for n in ATTACKS if create_attack(n, eps=0.1).random_start]


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", RANDOM_START)
def test_random_start_batch_equals_per_item(
    name: str, norm: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    # One seeded generator: the batch draws its start in one go; the per-item runs draw
    # theirs from the same generator, image after image.
    attack = create_attack(name, eps=EPS[norm], norm=norm)  # type: ignore[arg-type]
    assert attack.random_start
    batch = attack(images, AwayFromClean(cond_target, images), generator=_seed(7))
    g = _seed(7)
    alone = torch.cat([
        attack(images[i : i + 1], AwayFromClean(cond_target, images[i : i + 1]), generator=g)
        for i in range(images.shape[0])
    ])
    other_seed = attack(images, AwayFromClean(cond_target, images), generator=_seed(8))
    assert not torch.equal(batch, other_seed)  # the start matters: the check is not vacuous
    # sign() of a gradient within float noise of 0 may flip: allow a rare pixel
    mismatch = (alone - batch).abs() > 1e-5
    assert mismatch.float().mean() < 1e-3


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ATTACKS)
def test_seeded_runs_are_identical(
    name: str, norm: str, cond_target: GeneratorTarget, images: Tensor
) -> None:
    attack = create_attack(name, eps=EPS[norm], norm=norm)  # type: ignore[arg-type]
    objective = AwayFromClean(cond_target, images)
    a = attack(images, objective, generator=_seed(3))
    b = attack(images, objective, generator=_seed(3))
    assert torch.equal(a, b)
    if attack.random_start:
        assert not torch.equal(a, attack(images, objective, generator=_seed(4)))


@pytest.mark.parametrize("name", ATTACKS)
def test_presets_are_settings_of_the_one_loop(
    name: str, uncond_target: GeneratorTarget, images: Tensor
) -> None:
    attack = create_attack(name, eps=4 / 255)
    assert isinstance(attack, Attack) and attack.name == name
    objective = AwayFromClean(uncond_target, images)
    looped = run_attack(
        images,
        objective,
        eps=attack.eps,
        alpha=attack.alpha,
        steps=attack.steps,
        norm=attack.norm,
        random_start=attack.random_start,
        decay=attack.decay,
        generator=_seed(),
    )
    assert torch.equal(attack(images, objective, generator=_seed()), looped)


def test_fgsm_is_one_full_step(uncond_target: GeneratorTarget, images: Tensor) -> None:
    eps = 4 / 255
    objective = AwayFromClean(uncond_target, images.flip(-1))
    assert fgsm(eps) == Attack(eps=eps, alpha=eps, steps=1, name="fgsm")
    looped = run_attack(images, objective, eps=eps, alpha=eps, steps=1)
    assert torch.equal(fgsm(eps)(images, objective), looped)
    # every pixel with a non-zero gradient moved the full eps (unless clamped at 0/1)
    assert torch.isclose((looped - images).abs().amax(), torch.tensor(eps))


def test_l2_step_has_length_alpha() -> None:
    x = torch.full((2, 3, 8, 8), 0.5)
    x_adv = run_attack(
        x,
        lambda z: (z * torch.arange(3.0).view(1, 3, 1, 1)).sum((1, 2, 3)),
        eps=0.3,
        alpha=0.2,
        steps=1,
        norm="l2",
    )
    assert torch.allclose(_dist(x_adv, x, "l2"), torch.tensor(0.2))


def test_callback_sees_every_step(uncond_target: GeneratorTarget, images: Tensor) -> None:
    seen: list[tuple[int, tuple[int, ...], bool]] = []
    create_attack("ifgsm", eps=4 / 255, steps=3)(
        images,
        AwayFromClean(uncond_target, images),
        callback=lambda t, s: seen.append((t, tuple(s.shape), s.requires_grad)),
    )
    assert seen == [(0, (2,), False), (1, (2,), False), (2, (2,), False)]


def test_works_under_no_grad(uncond_target: GeneratorTarget, images: Tensor) -> None:
    objective = AwayFromClean(uncond_target, images)
    with torch.no_grad():
        x_adv = create_attack("ifgsm", eps=4 / 255, steps=2)(images, objective)
    assert not torch.equal(x_adv, images)


def test_create_attack_options_and_defaults() -> None:
    a = create_attack("pgd", eps=0.04, steps=20, alpha=0.01, norm="l2")
    assert (a.eps, a.alpha, a.steps, a.norm, a.random_start) == (0.04, 0.01, 20, "l2", True)
    assert create_attack("ifgsm", eps=0.04).alpha == pytest.approx(0.01)  # eps/4 at 10 steps
    assert default_alpha(0.04, 100) == pytest.approx(0.001)
    assert default_alpha(0.04, 1) == 0.04
    assert create_attack("mifgsm", eps=0.04).decay == 1.0
    with pytest.raises(ValueError, match="takes no 'steps'"):
        create_attack("fgsm", eps=0.04, steps=5)


@pytest.mark.parametrize("name", ATTACKS)
@pytest.mark.parametrize("eps", [0.0, -0.1, 1.5, float("nan")])
def test_bad_eps_is_rejected(name: str, eps: float) -> None:
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\]"):
        create_attack(name, eps=eps)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"eps": 0.0}, "eps must be in"),
        ({"eps": 2.0}, "eps must be in"),
        ({"eps": -1.0, "norm": "l2"}, "eps must be > 0"),
        ({"steps": 0}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"alpha": 0.0}, "alpha"),
        ({"norm": "l1"}, "norm"),
        ({"decay": -1.0}, "decay"),
        ({"linf_cap": 0.1}, "linf_cap only applies"),
        ({"linf_cap": 0.0, "norm": "l2"}, "linf_cap must be"),
    ],
)
def test_bad_settings_raise(settings: dict, match: str, images: Tensor) -> None:
    kwargs = {"eps": 0.03, "alpha": 0.01, "steps": 1, **settings}
    with pytest.raises(ValueError, match=match):
        run_attack(images, lambda z: z.sum((1, 2, 3)), **kwargs)
    with pytest.raises(ValueError, match=match):
        Attack(**kwargs)


@pytest.mark.parametrize("random_start", [False, True])
def test_l2_with_a_linf_cap_keeps_both_bounds(
    random_start: bool, cond_target: GeneratorTarget, images: Tensor
) -> None:
    cap, radius = 6 / 255, 0.4
    objective = AwayFromClean(cond_target, images)
    x_adv = run_attack(images, objective, eps=radius, alpha=0.2, steps=5, norm="l2",
                       random_start=random_start, generator=_seed(), linf_cap=cap)
    assert (_dist(x_adv, images, "l2") <= radius + TOL).all()
    assert (_dist(x_adv, images, "linf") <= cap + TOL).all()
    assert (_dist(x_adv, images, "linf") > cap / 2).all()  # the cap binds somewhere
    # An uncapped run with the same radius goes past the cap: the cap did the work.
    free = run_attack(images, objective, eps=radius, alpha=0.2, steps=5, norm="l2",
                      random_start=random_start, generator=_seed())
    assert (_dist(free, images, "linf") > cap + 1e-3).any()


def test_l2_budget_may_exceed_one(images: Tensor) -> None:
    x_adv = run_attack(images, lambda z: z.sum((1, 2, 3)), eps=3.0, alpha=1.0, steps=4, norm="l2")
    assert (_dist(x_adv, images, "l2") <= 3.0 + TOL).all()


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(3, 8, 8),
        torch.zeros(1, 3, 8, 8, dtype=torch.uint8),
        torch.full((1, 3, 4, 4), 1.5),
        torch.full((1, 3, 4, 4), float("nan")),
    ],
)
def test_bad_images_raise(bad: Tensor) -> None:
    with pytest.raises(ValueError):
        run_attack(bad, lambda z: z.sum((1, 2, 3)), eps=0.03, alpha=0.01, steps=1)


def test_objective_must_return_one_score_per_image(images: Tensor) -> None:
    with pytest.raises(ValueError, match=r"\(B,\)"):
        run_attack(images, lambda z: z.sum(), eps=0.03, alpha=0.01, steps=1)


def test_unknown_attack_lists_choices() -> None:
    with pytest.raises(UnknownAttackError, match="fgsm, ifgsm, mifgsm, pgd") as info:
        create_attack("cw", eps=0.03)
    assert isinstance(info.value, LookupError)


def test_list_attacks_has_builtins_with_descriptions() -> None:
    described = dict(list_attacks())
    assert {"fgsm", "ifgsm", "pgd", "mifgsm"} <= set(described)
    assert all(d and "\n" not in d for d in described.values())
    assert described["pgd"] == registry_module.attack_info("pgd").description


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    list_attacks()  # built-ins loaded before the snapshot
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def test_duplicate_name_is_an_error(clean_registry: None) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_attack("pgd")(attacks.pgd)


def test_entry_point_plugins_load_lazily(
    clean_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeEntryPoint:
        name, value = "tiny", "tiny_plugin:register"

        def load(self):  # type: ignore[no-untyped-def]
            def register() -> None:
                @register_attack("tiny")
                def tiny(eps: float) -> Attack:
                    """Tiny: two small steps."""
                    return Attack(eps=eps, alpha=eps / 2, steps=2, name="tiny")

            return register

    monkeypatch.setattr(registry_module, "_loaded", False)
    monkeypatch.setattr(registry_module, "entry_points", lambda group: [FakeEntryPoint()])
    assert "tiny" not in registry_module._REGISTRY  # nothing loaded before a lookup
    assert create_attack("tiny", eps=0.1) == Attack(eps=0.1, alpha=0.05, steps=2, name="tiny")
    assert registry_module.attack_info("tiny").description == "Tiny: two small steps."


def test_attacks_package_imports_neither_targets_nor_disrupt() -> None:
    for path in Path(attacks.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] in {"targets", "disrupt"} for n in names), path
