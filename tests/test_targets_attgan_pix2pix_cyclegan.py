"""AttGAN, pix2pix and CycleGAN targets: golden outputs, checkpoint formats, target invariants.

Golden files come from ``../shared/fixtures``, named in fixed lists (a missing file skips its
cases, and fails them when the ``CI`` environment variable is set); everything else uses the
tiny seeded variants so the file runs in a few seconds on a CPU.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from targets import CheckpointError, GeneratorTarget, load_target, target_info
from targets import attgan as attgan_mod
from targets import cyclegan as cyclegan_mod
from targets import pix2pix as pix2pix_mod
from targets.attgan import (
    CELEBA_ATTRS,
    AttGANGenerator,
    attgan_call,
    attgan_condition,
)
from targets.base import UNCONDITIONAL
from targets.checkpoints import load_state_dict_strict
from targets.cyclegan import N_BLOCKS, ResnetGenerator
from targets.pix2pix import NUM_DOWNS, UnetGenerator
from tests._shared import FIXTURES, golden, golden_files_on_disk, require

TINY = ("attgan.tiny", "pix2pix.tiny", "cyclegan.tiny")
# Every golden file this module tests, by name (never a directory listing).
ATTGAN_GOLDEN = "attgan/golden.pt"
PIX2PIX_GOLDENS = ("pix2pix_unet/golden.pt", "pix2pix_unet/golden_unet_128.pt")
CYCLEGAN_GOLDEN = "cyclegan_resnet/golden.pt"
GOLDEN_FILES = (ATTGAN_GOLDEN, *PIX2PIX_GOLDENS, CYCLEGAN_GOLDEN)
FIXTURE_DIRS = ("attgan", "pix2pix_unet", "cyclegan_resnet")


@functools.cache


def test_every_golden_file_on_disk_is_tested() -> None:
    assert golden_files_on_disk(FIXTURE_DIRS) == set(GOLDEN_FILES)


def close(actual: Tensor, expected: Tensor, g: dict[str, Any]) -> None:
    tol = g["tolerance"]
    torch.testing.assert_close(actual, expected, atol=tol["atol"], rtol=tol["rtol"])


@contextmanager
def replay_dropout(net: nn.Module, masks: list[Tensor]) -> Iterator[list[int]]:
    """Replace each ``nn.Dropout`` output, in execution order, by ``x * mask / (1 - p)``."""
    used = [0]

    def hook(mod: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> Tensor:
        assert isinstance(mod, nn.Dropout)
        mask = masks[used[0]]
        used[0] += 1
        assert mask.shape == out.shape
        return inputs[0] * mask.to(inputs[0].dtype) / (1 - mod.p)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Dropout)]
    try:
        yield used
    finally:
        for h in handles:
            h.remove()


def buffers_of(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.clone() for k, v in module.named_buffers()}


# ----------------------------------------------------------------------------- AttGAN


def _attgan_from_golden(g: dict[str, Any]) -> AttGANGenerator:
    net = AttGANGenerator(**g["config"])
    load_state_dict_strict(net, attgan_mod.remap_state_dict(g["state_dict"]), "golden")
    return net


def test_attgan_golden_all_outputs() -> None:
    g = golden(ATTGAN_GOLDEN)
    assert g["mode"] == "eval"
    net = _attgan_from_golden(g).eval()
    x, a = g["input"], g["condition"]
    with torch.no_grad():
        close(net(x, a), g["output"], g)
        zs = net(x, mode="enc")
        assert isinstance(zs, list) and len(zs) == len(g["encoder_features_eval"])
        for z, ref in zip(zs, g["encoder_features_eval"], strict=True):
            close(z, ref, g)
        close(net(zs, a, mode="dec"), g["output"], g)
        close(net.decode(net.encode(x), a), g["output"], g)
        net.train()
        close(net(x, a), g["output_train"], g)


def test_attgan_condition_scaling_matches_official() -> None:
    g = golden(ATTGAN_GOLDEN)
    raw, fed = g["condition_raw_att_b"], g["condition"]
    assert list(g["condition_order"]) == list(CELEBA_ATTRS)
    scaled = attgan_condition(raw)
    # test.py feeds +-0.5, except the edited attribute at +-test_int = +-1.0
    plain = fed.abs() == 0.5
    torch.testing.assert_close(scaled[plain], fed[plain])
    torch.testing.assert_close(2 * scaled[~plain], fed[~plain])
    assert (~plain).sum() == fed.shape[0]


def test_attgan_target_wrapper_reproduces_golden() -> None:
    g = golden(ATTGAN_GOLDEN)
    target = GeneratorTarget(
        "attgan.golden",
        _attgan_from_golden(g),
        input_size=(128, 128),
        call=attgan_call,
        mode="eval",
    )
    # the 0/1-scale condition whose scaling gives the official input (edited attr at 1.5/-0.5)
    cond01 = (g["condition"] / attgan_mod.THRES_INT + 1) / 2
    with torch.no_grad():
        out = target((g["input"] + 1) / 2, cond01)
    close(out * 2 - 1, g["output"], g)


def test_attgan_wrapped_prefixed_and_legacy_checkpoints_load() -> None:
    g = golden(ATTGAN_GOLDEN)
    sd = g["state_dict"]
    legacy = {"module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    full_save = {"G": legacy, "D": {"conv.0.weight": torch.zeros(1)}, "optim_G": {"lr": 1}}
    net = AttGANGenerator(**g["config"])
    load_state_dict_strict(net, attgan_mod.remap_state_dict(full_save), "wrapped")
    with torch.no_grad():
        close(net.eval()(g["input"], g["condition"]), g["output"], g)


def test_attgan_tiny_conditions_and_release_variants() -> None:
    target = load_target("attgan.tiny")
    assert [c.name for c in target.conditions] == list(CELEBA_ATTRS)
    for k, c in enumerate(target.conditions):
        assert c.vector is not None
        torch.testing.assert_close(c.vector, torch.eye(13)[k])
    assert isinstance(target, GeneratorTarget) and target.mode == "eval"
    with pytest.raises(ValueError, match="attribute"):
        target(torch.rand(1, 3, 64, 64), None)
    # the two released 128 models differ only in the injected width of dec_layers.1
    meta = {"dec_layers.1.layers.0.weight": torch.empty(1536, 512, 4, 4, device="meta")}
    assert attgan_mod._inject_layers_of(meta, 13) == 0
    meta = {"dec_layers.1.layers.0.weight": torch.empty(1549, 512, 4, 4, device="meta")}
    assert attgan_mod._inject_layers_of(meta, 13) == 1


# ----------------------------------------------------------------------------- pix2pix

def _unet_from_golden(g: dict[str, Any]) -> UnetGenerator:
    cfg = g["config"]
    net = UnetGenerator(
        cfg["input_nc"],
        cfg["output_nc"],
        NUM_DOWNS[cfg["netG"]],
        cfg["ngf"],
        cfg["norm"],
        cfg["use_dropout"],
    )
    sd = pix2pix_mod.remap_state_dict(g["state_dict"], norm=cfg["norm"])
    load_state_dict_strict(net, sd, "golden")
    return net


@pytest.mark.parametrize("rel", PIX2PIX_GOLDENS)
def test_pix2pix_golden_all_outputs(rel: str) -> None:
    g = golden(rel)
    assert g["mode"] == "train"
    net = _unet_from_golden(g)
    x = g["input"]
    with torch.no_grad():
        # eval first: a plain train-mode forward updates the running statistics
        close(net.eval()(x), g["output_eval"], g)
        net.train()
        with replay_dropout(net, list(g["dropout_masks"])) as used:
            close(net(x), g["output"], g)
        assert used[0] == len(g["dropout_masks"])
        if "output_train_nodropout" in g:
            for m in net.modules():
                if isinstance(m, nn.Dropout):
                    m.eval()
            close(net(x), g["output_train_nodropout"], g)


@pytest.mark.parametrize("rel", PIX2PIX_GOLDENS)
def test_pix2pix_seeded_dropout_matches_official_draws(rel: str) -> None:
    # Dropout draws from torch's global RNG in the official order (innermost first).
    g = golden(rel)
    net = _unet_from_golden(g).train()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        out = net(g["input"])
    close(out, g["output"], g)


@pytest.mark.parametrize("rel", PIX2PIX_GOLDENS)
def test_pix2pix_target_wrapper_reproduces_golden(rel: str) -> None:
    g = golden(rel)
    size = 2 ** NUM_DOWNS[g["config"]["netG"]]
    x01 = (g["input"] + 1) / 2
    train = GeneratorTarget("p2p", _unet_from_golden(g), input_size=(size, size), mode="train")
    assert not train.batch_independent
    before = buffers_of(train)
    with torch.no_grad(), replay_dropout(train, list(g["dropout_masks"])):
        out = train(x01, None)
    close(out * 2 - 1, g["output"], g)
    after = buffers_of(train)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    evaluated = GeneratorTarget("p2p", _unet_from_golden(g), input_size=(size, size), mode="eval")
    with torch.no_grad():
        close(evaluated(x01, None) * 2 - 1, g["output_eval"], g)


def test_pix2pix_target_randomness_follows_global_rng() -> None:
    target = load_target("pix2pix.tiny")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(1)
        a = target(x, None)
        torch.manual_seed(1)
        b = target(x, None)
        torch.manual_seed(2)
        c = target(x, None)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ----------------------------------------------------------------------------- CycleGAN

CYCLEGAN_VARIANTS = ("resnet_9blocks", "resnet_6blocks")


def _cyclegan_golden(variant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    g = golden(CYCLEGAN_GOLDEN)
    part = g if variant == "resnet_9blocks" else g["resnet_6blocks"]
    return g, part


def _resnet(cfg: dict[str, Any]) -> ResnetGenerator:
    return ResnetGenerator(
        cfg["input_nc"],
        cfg["output_nc"],
        cfg["ngf"],
        cfg["norm"],
        cfg["use_dropout"],
        N_BLOCKS[cfg["netG"]],
    )


@pytest.mark.parametrize("variant", CYCLEGAN_VARIANTS)
def test_cyclegan_golden_outputs(variant: str) -> None:
    g, part = _cyclegan_golden(variant)
    assert g["mode"] == "train"
    net = _resnet(part["config"])
    load_state_dict_strict(net, cyclegan_mod.remap_state_dict(part["state_dict"]), "golden")
    with torch.no_grad():
        close(net.train()(g["input"]), part["output"], g)
        close(net.eval()(g["input"]), part["output"], g)  # train == eval for this network
    target = GeneratorTarget("cg", net, input_size=(128, 128), mode="train")
    with torch.no_grad():
        close(target((g["input"] + 1) / 2, None) * 2 - 1, part["output"], g)


def test_cyclegan_released_legacy_entries_are_dropped() -> None:
    g, _ = _cyclegan_golden("resnet_9blocks")
    released = {**g["state_dict"], **g["legacy_extra_entries"]}
    with pytest.raises(CheckpointError, match="running_mean"):
        load_state_dict_strict(_resnet(g["config"]), released, "unpatched")
    net = _resnet(g["config"])
    load_state_dict_strict(net, cyclegan_mod.remap_state_dict(released), "released")
    with torch.no_grad():
        close(net(g["input"]), g["output"], g)


def test_cyclegan_official_factory_loads_released_format(tmp_path: Path) -> None:
    # full-size resnet_6blocks (7.8M parameters): released layout plus legacy IN statistics,
    # saved through DataParallel (module. prefix)
    ref = cyclegan_mod.ResnetGenerator(n_blocks=6)
    sd: dict[str, Tensor] = dict(ref.state_dict())
    for idx in ("2", "5", "8", "17", "20"):
        sd[f"model.{idx}.running_mean"] = torch.zeros(8)
        sd[f"model.{idx}.num_batches_tracked"] = torch.tensor(0)
    sd = {"module." + k: v for k, v in sd.items()}
    path = tmp_path / "latest_net_G.pth"
    torch.save(sd, path)
    target = load_target("cyclegan.resnet_6blocks", weights=path)
    assert isinstance(target, GeneratorTarget)
    assert target.input_size == (256, 256) and target.conditions == UNCONDITIONAL
    loaded = target.generator.state_dict()
    assert loaded.keys() == ref.state_dict().keys()
    for k, v in ref.state_dict().items():
        assert torch.equal(loaded[k], v), k


# ----------------------------------------------------------------------------- all targets

OFFICIAL = {
    "attgan.celeba": (128, 128),
    "pix2pix.unet_256": (256, 256),
    "pix2pix.unet_128": (128, 128),
    "cyclegan.resnet_9blocks": (256, 256),
    "cyclegan.resnet_6blocks": (256, 256),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_targets_need_weights_and_reject_wrong_files(name: str, tmp_path: Path) -> None:
    info = target_info(name)
    assert info.needs_weights and not info.bundled
    if info.weights is not None:
        assert info.weights.input_size == OFFICIAL[name]
        assert info.weights.sha256 is None and info.weights.value_range == (-1.0, 1.0)
        assert info.weights.licence != "unknown" and info.weights.provenance
    with pytest.raises(CheckpointError, match="weights=PATH"):
        load_target(name)
    # a checkpoint of another (tiny) network: loud failure naming keys
    wrong = tmp_path / "wrong.pth"
    torch.save(_tiny_checkpoint("cyclegan.tiny"), wrong)
    with pytest.raises(CheckpointError, match="wrong.pth"):
        load_target(name, weights=wrong)


def _condition(target: Any) -> Tensor | None:
    return target.conditions[0].vector


@pytest.mark.parametrize("name", TINY)
def test_tiny_target_invariants(name: str) -> None:
    target = load_target(name)
    assert isinstance(target, GeneratorTarget)
    assert all(not p.requires_grad for p in target.parameters())
    assert target.input_size is not None
    before = buffers_of(target)
    x = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0), requires_grad=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        y = target(x, _condition(target))
        y2 = target(x, _condition(target)) if name != "pix2pix.tiny" else y
    assert y.shape == (2, 3, *target.input_size)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1
    assert torch.equal(y, y2)
    (grad,) = torch.autograd.grad(y.square().sum(), x)
    assert grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters())
    after = buffers_of(target)
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert target.batch_independent == (name != "pix2pix.tiny")
    if target.batch_independent:
        with torch.no_grad():
            one = target(x[1:].detach(), _condition(target))
        torch.testing.assert_close(one, y[1:].detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", TINY)
def test_tiny_targets_are_seeded_and_leave_global_rng_alone(name: str) -> None:
    state = torch.random.get_rng_state()
    a = _tiny_checkpoint(name)
    assert torch.equal(state, torch.random.get_rng_state())
    b = _tiny_checkpoint(name)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _tiny_checkpoint(name: str) -> dict[str, Tensor]:
    target = load_target(name)
    assert isinstance(target, GeneratorTarget)
    return {k: v.clone() for k, v in target.generator.state_dict().items()}


@pytest.mark.parametrize("name", TINY)
def test_tiny_missing_and_extra_keys_are_named(name: str, tmp_path: Path) -> None:
    sd = _tiny_checkpoint(name)
    missing_key = sorted(k for k in sd if k.endswith("weight"))[-1]
    missing = {k: v for k, v in sd.items() if k != missing_key}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=f"missing keys: .*{missing_key}"):
        load_target(name, weights=tmp_path / "missing.pth")
    extra = {**sd, "model.99.extra.weight": torch.zeros(3)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys: .*model\.99\.extra\.weight"):
        load_target(name, weights=tmp_path / "extra.pth")


PREFIXED: dict[str, Callable[[dict[str, Tensor]], dict[str, object]]] = {
    "attgan.tiny": lambda sd: {"G": {"module." + k: v for k, v in sd.items()}},
    "pix2pix.tiny": lambda sd: {
        "module." + k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")
    },
    "cyclegan.tiny": lambda sd: {
        **{"module." + k: v for k, v in sd.items()},
        "module.model.2.running_mean": torch.zeros(4),
        "module.model.2.running_var": torch.ones(4),
        "module.model.2.num_batches_tracked": torch.tensor(0),
    },
}


@pytest.mark.parametrize("name", TINY)
def test_tiny_prefixed_wrapped_legacy_checkpoints_load(name: str, tmp_path: Path) -> None:
    sd = _tiny_checkpoint(name)
    path = tmp_path / "ckpt.pth"
    torch.save(PREFIXED[name](sd), path)
    target = load_target(name, weights=path)
    assert isinstance(target, GeneratorTarget)
    loaded = target.generator.state_dict()
    assert loaded.keys() == sd.keys()
    for k in sd:
        assert torch.equal(loaded[k], sd[k]), k


def _manifest_layouts() -> list[tuple[str, str, Callable[[], nn.Module]]]:
    return [
        ("attgan", "128_shortcut1_inject1_none", lambda: AttGANGenerator(inject_layers=1)),
        ("attgan", "128_shortcut1_inject0_none", lambda: AttGANGenerator(inject_layers=0)),
        ("pix2pix_unet", "unet_256", lambda: UnetGenerator(num_downs=8)),
        ("pix2pix_unet", "unet_128", lambda: UnetGenerator(num_downs=7)),
        ("cyclegan_resnet", "resnet_9blocks", lambda: ResnetGenerator(n_blocks=9)),
        ("cyclegan_resnet", "resnet_6blocks", lambda: ResnetGenerator(n_blocks=6)),
        (
            "cyclegan_resnet",
            "resnet_9blocks_with_dropout",
            lambda: ResnetGenerator(n_blocks=9, use_dropout=True),
        ),
    ]


@pytest.mark.parametrize(
    ("fixture", "variant", "build"),
    _manifest_layouts(),
    ids=[f"{f}-{v}" for f, v, _ in _manifest_layouts()],
)
def test_full_size_layout_matches_manifest(
    fixture: str, variant: str, build: Callable[[], nn.Module]
) -> None:
    path = require(FIXTURES / fixture / "manifest.json", f"{fixture} manifest")
    spec = json.loads(path.read_text())["variants"][variant]
    with torch.device("meta"):  # shapes only, no memory
        net = build()
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    official = {e["key"]: e["shape"] for e in spec["state_dict"]}
    assert ours == official
    assert sum(p.numel() for p in net.parameters()) == spec["num_params"]
    legacy = spec.get("legacy_extra_keys_in_released_checkpoints")
    if legacy:
        released = {**dict.fromkeys(official), **dict.fromkeys(legacy)}
        assert set(cyclegan_mod.remap_state_dict(released)) == set(official)
