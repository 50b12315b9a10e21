"""StarGAN and GANimation targets: golden outputs of the official code, loading, freezing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from targets import CheckpointError, GeneratorTarget, list_targets, load_target, target_info
from targets.base import freeze_for_inference
from targets.ganimation import (
    ACTION_UNITS,
    GANimationGenerator,
    GANimationGeneratorDD,
    compose,
    ganimation_target,
)
from targets.stargan import (
    CELEBA_ATTRIBUTES,
    RAFD_EXPRESSIONS,
    Port,
    StarGANGenerator,
    StarGANGeneratorDD,
    both_conditions,
    rafd_conditions,
    stargan_target,
)
from tests._shared import golden as _golden
from tests._shared import golden_files_on_disk

FIXTURE_DIRS = (
    "stargan",
    "stargan_disrupting_deepfakes",
    "ganimation",
    "ganimation_disrupting_deepfakes",
)
# A fixed list, not a directory listing: a missing fixture must show up as a skipped (or,
# under CI, failed) case, never as a case that silently disappears.
GOLDEN_FILES = (
    "stargan/golden.pt",
    "stargan_disrupting_deepfakes/golden.pt",
    "ganimation/golden.pt",
    "ganimation_disrupting_deepfakes/golden.pt",
)




def test_every_golden_file_on_disk_is_tested() -> None:
    assert golden_files_on_disk(FIXTURE_DIRS) == set(GOLDEN_FILES)


def _build(rel: str, state_dict: dict[str, Any], tmp_path: Path) -> GeneratorTarget:
    """Build the target for golden file ``rel`` by saving ``state_dict`` and loading it."""
    golden = _golden(rel)
    path = tmp_path / "G.ckpt"
    torch.save(state_dict, path)
    cfg = golden["config"]
    size = tuple(golden["input"].shape[-2:])
    port: Port = "dd" if "disrupting" in rel else "official"
    if rel.startswith("stargan"):
        return stargan_target(
            path, name=rel, conv_dim=cfg["conv_dim"], c_dim=cfg["c_dim"],
            repeat_num=cfg["repeat_num"], input_size=size, port=port,
        )
    return ganimation_target(
        path, name=rel, conv_dim=cfg["conv_dim"], c_dim=cfg["c_dim"],
        repeat_num=cfg["repeat_num"], input_size=size, port=port,
    )


def _native_outputs(net: nn.Module, golden: dict[str, Any]) -> dict[str, Any]:
    """Every output the fixture stores, computed by ``net`` in its current mode."""
    x, c = golden["input"], golden["condition"]
    with torch.no_grad():
        if isinstance(net, StarGANGeneratorDD):
            out, feature_maps = net(x, c)
            return {"output": out, "feature_maps": feature_maps}
        if isinstance(net, StarGANGenerator):
            return {"output": net(x, c)}
        if isinstance(net, GANimationGenerator):
            color, attention = net(x, c)
        else:
            assert isinstance(net, GANimationGeneratorDD)
            attention, color = net(x, c)
    return {
        "output": compose(x, color, attention),
        "output_color": color,
        "output_attention": attention,
    }


def _close(actual: Tensor, expected: Tensor, golden: dict[str, Any]) -> None:
    tol = golden["tolerance"]
    torch.testing.assert_close(actual, expected, atol=tol["atol"], rtol=tol["rtol"])


@pytest.mark.parametrize("rel", GOLDEN_FILES)
def test_golden_outputs_match_official(rel: str, tmp_path: Path) -> None:
    golden = _golden(rel)
    target = _build(rel, golden["state_dict"], tmp_path)
    net = target.generator
    assert target.mode == golden["mode"]
    assert net.training == (golden["mode"] == "train")

    stored = {k for k in golden if k.startswith(("output", "feature_maps"))}
    stored -= {"output_keys_note", "output_note"}
    checked: set[str] = set()

    # Official mode first (momentum 0 keeps running stats fixed), then the other mode.
    actual = _native_outputs(net, golden)
    for key, value in actual.items():
        if key == "feature_maps":
            expected_maps = golden["feature_maps"]
            assert len(value) == len(expected_maps)
            for got, want in zip(value, expected_maps, strict=True):
                _close(got, want, golden)
            for i, j in golden["feature_map_aliases"]:
                assert value[i] is value[j]
            assert isinstance(net, StarGANGeneratorDD)
            names = [type(m).__name__ for m in net.main]
            assert names == golden["feature_map_layer_types"]
        else:
            _close(value, golden[key], golden)
        checked.add(key)

    other: str = "eval" if golden["mode"] == "train" else "train"
    freeze_for_inference(net, other)  # type: ignore[arg-type]
    other_out = _native_outputs(net, golden)["output"]
    if f"output_{other}" in golden:
        _close(other_out, golden[f"output_{other}"], golden)
        checked.add(f"output_{other}")
    elif golden["verification"].get("train_vs_eval_maxdiff") == 0.0:
        _close(other_out, golden["output"], golden)  # e.g. official GANimation: no IN stats

    assert stored <= checked, f"stored outputs not checked: {sorted(stored - checked)}"


@pytest.mark.parametrize("rel", GOLDEN_FILES)
def test_target_wrapper_maps_values(rel: str, tmp_path: Path) -> None:
    """The [0,1] wrapper on (input+1)/2 gives (output+1)/2, in the official mode."""
    golden = _golden(rel)
    target = _build(rel, golden["state_dict"], tmp_path)
    x01 = (golden["input"] + 1) / 2
    with torch.no_grad():
        y01 = target(x01, golden["condition"])
    _close(y01, (golden["output"] + 1) / 2, golden)
    assert y01.min() >= 0.0 and y01.max() <= 1.0


# ------------------------------------------------------------------ checkpoint formats


def _check_output(rel: str, sd: dict[str, Any], tmp_path: Path) -> None:
    """Loading ``sd`` gives exactly the golden weights (so the golden outputs follow)."""
    reference = _golden(rel)["state_dict"]
    loaded = _build(rel, sd, tmp_path).generator.state_dict()
    for key, value in loaded.items():
        if key.endswith("num_batches_tracked"):
            continue  # unused by the forward pass; filled in when a file lacks it
        assert torch.equal(value, reference[key]), key


def test_stargan_module_prefix_without_num_batches_tracked(tmp_path: Path) -> None:
    rel = "stargan/golden.pt"
    golden = _golden(rel)
    sd = {
        f"module.{k}": v
        for k, v in golden["state_dict"].items()
        if not k.endswith("num_batches_tracked")
    }
    _check_output(rel, sd, tmp_path)
    _check_output(rel, {"G": dict(golden["state_dict"])}, tmp_path)  # wrapper dict


def test_ganimation_legacy_pytorch03_keys_and_module_prefix(tmp_path: Path) -> None:
    rel = "ganimation/golden.pt"
    golden = _golden(rel)
    merged = {**golden["state_dict"], **golden["legacy_pytorch03_extra_entries"]}
    order = golden["legacy_pytorch03_key_order"]
    assert set(order) == set(merged)
    _check_output(rel, {f"module.{k}": merged[k] for k in order}, tmp_path)


def test_ganimation_dd_aliases_checked_and_optional(tmp_path: Path) -> None:
    rel = "ganimation_disrupting_deepfakes/golden.pt"
    golden = _golden(rel)
    sd = golden["state_dict"]
    without_debug = {k: v for k, v in sd.items() if not k.startswith("debug")}
    _check_output(rel, without_debug, tmp_path)

    alias = next(iter(golden["state_dict_alias_map"]))
    tampered = {k: v.clone() for k, v in sd.items()}
    tampered[alias] += 1.0
    with pytest.raises(CheckpointError, match=alias.replace(".", r"\.")):
        _build(rel, tampered, tmp_path)


# ------------------------------------------------------------------- registry and loading

OFFICIAL = {
    # name: (network builder, input size, number of conditions, condition length)
    "stargan.celeba": (lambda: StarGANGenerator(64, 5, 6), (128, 128), 5, 5),
    "stargan.rafd": (lambda: StarGANGenerator(64, 8, 6), (128, 128), 8, 8),
    "stargan.both": (lambda: StarGANGenerator(64, 15, 6), (256, 256), 13, 15),
    "stargan.celeba.dd": (lambda: StarGANGeneratorDD(64, 5, 6), (256, 256), 5, 5),
    "ganimation": (lambda: GANimationGenerator(64, 17, 6), (128, 128), 17, 17),
    "ganimation.dd": (lambda: GANimationGeneratorDD(64, 17, 6), (128, 128), 17, 17),
}
TINY = ("stargan.tiny", "ganimation.tiny")


def test_registered_names_and_weights_flags() -> None:
    names = {info.name for info in list_targets()}
    assert set(OFFICIAL) | set(TINY) <= names
    for name in OFFICIAL:
        info = target_info(name)
        assert info.needs_weights and info.weights is not None
        assert info.weights.sha256 is None and info.weights.value_range == (-1.0, 1.0)
        with pytest.raises(CheckpointError, match="needs its checkpoint"):
            load_target(name)
    for name in TINY:
        assert not target_info(name).needs_weights


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_names_load_full_size_checkpoints(name: str, tmp_path: Path) -> None:
    build, size, n_conditions, c_len = OFFICIAL[name]
    path = tmp_path / "G.ckpt"
    torch.save(build().state_dict(), path)
    target = load_target(name, weights=path)
    assert isinstance(target, GeneratorTarget)
    assert target.input_size == size == target_info(name).weights.input_size  # type: ignore[union-attr]
    assert len(target.conditions) == n_conditions
    for cond in target.conditions:
        assert cond.vector is not None and cond.vector.shape == (c_len,)


def _save_variant(name: str, tmp_path: Path, change: str) -> tuple[Path, str]:
    if name in TINY:
        sd = dict(load_target(name).generator.state_dict())  # type: ignore[attr-defined]
    else:
        sd = dict(OFFICIAL[name][0]().state_dict())
    if change == "missing":
        key = "main.3.weight"
        del sd[key]
    else:
        key = "main.99.weight"
        sd[key] = torch.zeros(1)
    path = tmp_path / f"{change}.ckpt"
    torch.save(sd, path)
    return path, key


@pytest.mark.parametrize("change", ["missing", "extra"])
@pytest.mark.parametrize("name", [*TINY, "stargan.celeba", "ganimation.dd"])
def test_unfitting_checkpoint_names_the_key(name: str, change: str, tmp_path: Path) -> None:
    path, key = _save_variant(name, tmp_path, change)
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")) as info:
        load_target(name, weights=path)
    assert change in str(info.value) and str(path) in str(info.value)


def test_condition_layouts() -> None:
    tiny = load_target("stargan.tiny")
    assert [c.name for c in tiny.conditions] == list(CELEBA_ATTRIBUTES)
    conditions = both_conditions()
    assert [c.name for c in conditions] == [*CELEBA_ATTRIBUTES, *RAFD_EXPRESSIONS]
    for k, cond in enumerate(conditions):
        assert cond.vector is not None
        expected = torch.zeros(15)
        if k < 5:
            expected[k], expected[13] = 1.0, 1.0
        else:
            expected[k], expected[14] = 1.0, 1.0
        assert torch.equal(cond.vector, expected)
    assert [c.name for c in rafd_conditions()] == list(RAFD_EXPRESSIONS)
    au = load_target("ganimation.tiny").conditions
    assert [c.name for c in au] == list(ACTION_UNITS)
    assert torch.equal(torch.stack([c.vector for c in au]), torch.eye(17))  # type: ignore[misc]


# ------------------------------------------------------------------ frozen, deterministic


# The DD GANimation golden runs in train mode with running stats: the risky case.
FREEZE_CASES = (*TINY, "ganimation_disrupting_deepfakes/golden.pt")


@pytest.mark.parametrize("case", FREEZE_CASES)
def test_frozen_buffers_unchanged_and_grad_only_to_input(case: str, tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    target = load_target(case) if case in TINY else _build(case, _golden(case)["state_dict"],
                                                          tmp_path)
    assert isinstance(target, GeneratorTarget)
    assert all(not p.requires_grad for p in target.parameters())
    buffers = {k: v.clone() for k, v in target.generator.named_buffers()}
    x = torch.rand(2, 3, 24, 40, generator=gen, requires_grad=True)
    c = target.conditions[1].vector
    y1 = target(x, c)
    y2 = target(x, c)
    assert y1.shape[-2:] == target.input_size
    torch.testing.assert_close(y1, y2, atol=0.0, rtol=0.0)
    for k, v in target.generator.named_buffers():
        assert torch.equal(v, buffers[k]), f"{target.name}: buffer {k} changed"
    (grad,) = torch.autograd.grad(y1.sum(), x)
    assert grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters())
    assert y1.min() >= 0.0 and y1.max() <= 1.0


@pytest.mark.parametrize("name", TINY)
def test_tiny_seeded_and_batch_independent(name: str) -> None:
    a, b = load_target(name), load_target(name)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    c = torch.stack([cond.vector for cond in a.conditions[:3]])  # type: ignore[misc]
    with torch.no_grad():
        ya, yb = a(x, c), b(x, c)
        single = torch.cat([a(x[i : i + 1], c[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(ya, yb, atol=0.0, rtol=0.0)
    torch.testing.assert_close(ya, single, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="condition"):
        a(x, None)
