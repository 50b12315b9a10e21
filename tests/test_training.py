"""Training pipeline: the face pack, the face-swap model and trainer, evaluators, bundled loading.

Fast and CPU-only: a pack of a handful of images per split is built from ../shared/data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch

from targets.checkpoints import CheckpointError
from targets.faceswap import FaceSwapAutoencoder
from targets.training.data import (
    SPLITS,
    load_faces,
    pack_faces,
    random_flip,
    split_of,
    to_unit,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not available")
LIMIT = 3  # images per split (and per LFW identity)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data not available")
    out = tmp_path_factory.mktemp("pack") / "faces.npz"
    pack_faces(SHARED, out, limit=LIMIT, workers=1)
    return out


# ----------------------------------------------------------------------------- data


def test_split_rules_are_fixed() -> None:
    assert split_of("celeba", "000001.jpg") == "generator"
    assert split_of("celeba", "006000.jpg") == "generator"
    assert split_of("celeba", "006001.jpg") == "evaluator"
    assert split_of("celeba", "009000.jpg") == "evaluator"
    assert split_of("celeba", "009001.jpg") == "test"
    assert split_of("celeba", "009501.jpg") == ""
    # Hash splits must never move (they decide which images any model has seen).
    recorded = {n: split_of("lfw", n) for n in ("George_W_Bush_0001.jpg", "Colin_Powell_0001.jpg")}
    assert recorded == {"George_W_Bush_0001.jpg": "evaluator", "Colin_Powell_0001.jpg": "generator"}
    counts = {s: 0 for s in SPLITS}
    for i in range(4000):
        counts[split_of("utkface", f"img_{i}.jpg")] += 1
    assert abs(counts["generator"] / 4000 - 0.60) < 0.03
    assert abs(counts["evaluator"] / 4000 - 0.25) < 0.03
    assert abs(counts["test"] / 4000 - 0.15) < 0.03


@needs_data
def test_pack_loads_without_pickle_and_splits_are_disjoint(pack: Path) -> None:
    with np.load(pack, allow_pickle=False) as z:
        assert z["celeba_labels"].shape[1] == 40
        assert (z["utkface_ages"] >= 15).all()
    for dataset in ("celeba", "utkface", "lfw"):
        seen: set[str] = set()
        for split in SPLITS:
            faces = load_faces(pack, dataset, split)  # type: ignore[arg-type]
            assert faces.images.dtype == torch.uint8
            assert tuple(faces.images.shape[1:]) == (3, 64, 64)
            assert len(faces.names) == len(faces) == faces.labels.shape[0] > 0
            assert all(split_of(dataset, n) == split for n in faces.names)
            assert not seen & set(faces.names)
            seen |= set(faces.names)
            again = load_faces(pack, dataset, split)  # type: ignore[arg-type]
            assert torch.equal(again.images, faces.images) and again.names == faces.names


@needs_data
def test_labels_have_the_documented_form(pack: Path) -> None:
    celeba = load_faces(pack, "celeba", "test")
    assert celeba.labels.dtype == torch.float32 and celeba.labels.shape[1] == 40
    assert set(celeba.labels.unique().tolist()) <= {0.0, 1.0}
    assert "Blond_Hair" in celeba.label_names and celeba.label_names[-1] == "Young"
    utk = load_faces(pack, "utkface", "generator")
    assert utk.labels.dtype == torch.long and utk.label_names == ["young", "middle", "old"]
    for name, group in zip(utk.names, utk.labels.tolist(), strict=True):
        age = int(name.split("_")[0])
        assert group == (0 if age <= 29 else 1 if age <= 49 else 2)
    lfw = load_faces(pack, "lfw", "evaluator")
    assert lfw.label_names == ["George_W_Bush", "Colin_Powell"]
    for name, ident in zip(lfw.names, lfw.labels.tolist(), strict=True):
        assert name.startswith(lfw.label_names[ident])
    assert sorted(lfw.labels.tolist()) == [0] * LIMIT + [1] * LIMIT


def test_to_unit_and_random_flip() -> None:
    x = torch.randint(0, 256, (6, 3, 4, 5), dtype=torch.uint8)
    u = to_unit(x)
    assert u.dtype == torch.float32 and float(u.min()) >= 0 and float(u.max()) <= 1
    f1 = random_flip(u, torch.Generator().manual_seed(3))
    f2 = random_flip(u, torch.Generator().manual_seed(3))
    assert torch.equal(f1, f2)
    for a, b in zip(u, f1, strict=True):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)


# ----------------------------------------------------------------------------- face swap


def _tiny_faceswap() -> FaceSwapAutoencoder:
    torch.manual_seed(0)
    return FaceSwapAutoencoder(["a", "b"], width=4, bottleneck=8)


def test_faceswap_routes_each_sample_through_its_decoder() -> None:
    model = _tiny_faceswap().eval()
    x = torch.rand(3, 3, 64, 64, requires_grad=True)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = model(x, c)
    assert y.shape == (3, 3, 64, 64)
    assert 0 <= float(y.detach().min()) <= float(y.detach().max()) <= 1
    h = model.encode(x)
    expected = torch.stack([model.decode(h[i:i + 1], int(c[i].argmax()))[0] for i in range(3)])
    torch.testing.assert_close(y, expected)
    for i in range(3):  # batch equals per item
        torch.testing.assert_close(model(x[i:i + 1], c[i]), y[i:i + 1])
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError):
        model(x.detach(), torch.ones(3, 3))


def test_faceswap_reconstruction_loss_falls() -> None:
    model = _tiny_faceswap()
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4, generator=gen), size=(64, 64),
                                        mode="bilinear", align_corners=False)  # smooth images
    c = torch.eye(2)[[0, 1, 0, 1]]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = (model(x, c) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


@needs_data
def test_faceswap_training_resumes_exactly(pack: Path, tmp_path: Path) -> None:
    from targets.training.faceswap_train import train_faceswap

    kw = {"seconds": 60.0, "device": "cpu", "batch_size": 4, "width": 4, "bottleneck": 8,
          "log": False}
    straight = train_faceswap(pack, tmp_path / "a", iters=4, **kw)  # type: ignore[arg-type]
    train_faceswap(pack, tmp_path / "b", iters=4, stop_at=2, **kw)  # type: ignore[arg-type]
    resumed = train_faceswap(pack, tmp_path / "b", iters=4, resume=True, **kw)  # type: ignore[arg-type]
    assert straight["iterations"] == resumed["iterations"] == 4
    assert resumed["resumed_from_iteration"] == 2
    wa = torch.load(tmp_path / "a" / "faceswap" / "final.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "faceswap" / "final.pt", weights_only=True)
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k])
    info = json.loads((tmp_path / "b" / "faceswap" / "train.json").read_text())
    assert info["generator"]["kwargs"]["width"] == 4


# ----------------------------------------------------------------------------- evaluators


def test_evaluator_save_load_round_trip(tmp_path: Path) -> None:
    from targets.evaluator import FaceClassifier, load_evaluator
    from targets.training.common import fp16_state_dict, save_fp16_safetensors

    torch.manual_seed(0)
    model = FaceClassifier(5, multilabel=True, width=8).eval()
    path = tmp_path / "ev.safetensors"
    save_fp16_safetensors(fp16_state_dict(model), path,
                          {"config": json.dumps(model.config()), "label_names": "[]"})
    loaded = load_evaluator(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x), atol=2e-2, rtol=2e-2)
    assert loaded(torch.rand(1, 3, 80, 80)).shape == (1, 5)  # resized inside
    with pytest.raises(CheckpointError):
        load_evaluator(tmp_path / "missing.safetensors")


@needs_data
def test_train_evaluator_writes_loadable_weights(pack: Path, tmp_path: Path) -> None:
    from targets.evaluator import load_evaluator
    from targets.training.evaluators import train_evaluator

    card = train_evaluator("lfw", pack, tmp_path, seconds=60, max_iters=2, device="cpu",
                           batch_size=4, width=8, eval_every=1, log=False)
    assert card["iterations"] == 2
    assert "balanced_accuracy" in card["test"]  # type: ignore[operator]
    model = load_evaluator(tmp_path / "evaluator_lfw.safetensors")
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 2)


# ----------------------------------------------------------------------------- bundled


def _write_bundled(name: str, net: torch.nn.Module, arch: Mapping[str, object], folder: Path,
                   mode: str = "eval") -> Path:
    from targets.bundled import SPECS
    from targets.checkpoints import sha256_of
    from targets.training.common import fp16_state_dict, save_fp16_safetensors

    spec = SPECS[name]
    path = folder / spec.file
    save_fp16_safetensors(fp16_state_dict(net), path)
    card = {"name": name, "sha256": sha256_of(path), "architecture": arch, "inference_mode": mode}
    (folder / spec.card_file).write_text(json.dumps(card))
    return path


def test_bundled_names_and_missing_weights(tmp_path: Path) -> None:
    from targets import target_info
    from targets.bundled import BUNDLED_DEFAULT, load_bundled, weights_installed

    assert BUNDLED_DEFAULT == ("stargan.celeba96", "attgan.celeba96", "cyclegan.utkface64",
                               "faceswap.lfw64")
    for name in BUNDLED_DEFAULT:
        info = target_info(name)
        assert info.bundled and not info.needs_weights
        assert not weights_installed(name, tmp_path)
        with pytest.raises(CheckpointError, match="not installed"):
            load_bundled(name, tmp_path)


def test_bundled_faceswap_loads_checks_sha_and_routes(tmp_path: Path) -> None:
    from targets.bundled import load_bundled, weights_installed

    net = _tiny_faceswap()
    arch = {"class": "targets.faceswap.FaceSwapAutoencoder", "kwargs": net.config()}
    path = _write_bundled("faceswap.lfw64", net, arch, tmp_path)
    assert weights_installed("faceswap.lfw64", tmp_path)
    target = load_bundled("faceswap.lfw64", tmp_path)
    assert [c.name for c in target.conditions] == ["as_George_W_Bush", "as_Colin_Powell"]
    assert target.mode == "eval" and not any(p.requires_grad for p in target.parameters())
    x = torch.rand(2, 3, 96, 96)  # any size: resized inside
    c = torch.stack([target.conditions[0].vector, target.conditions[1].vector])  # type: ignore[list-item]
    y = target(x, c)
    assert y.shape == (2, 3, 64, 64)
    torch.testing.assert_close(y[1:], target(x[1:], target.conditions[1].vector))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_bundled("faceswap.lfw64", tmp_path)


def test_bundled_cyclegan_pair_routes_per_sample(tmp_path: Path) -> None:
    from targets.bundled import CycleGANPair, load_bundled
    from targets.cyclegan import ResnetGenerator

    kw = {"input_nc": 3, "output_nc": 3, "ngf": 4, "norm": "instance", "use_dropout": False,
          "n_blocks": 1}
    torch.manual_seed(0)
    pair = CycleGANPair(ResnetGenerator(**kw), ResnetGenerator(**kw))  # type: ignore[arg-type]
    arch = {"class": "targets.bundled.CycleGANPair",
            "g_young2old": {"kwargs": kw}, "g_old2young": {"kwargs": kw}}
    _write_bundled("cyclegan.utkface64", pair, arch, tmp_path)
    target = load_bundled("cyclegan.utkface64", tmp_path)
    assert [c.name for c in target.conditions] == ["to_old", "to_young"]
    x = torch.rand(3, 3, 64, 64)
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = target(x, c)
    with torch.no_grad():
        g = target.generator
        old = g.g_young2old(x * 2 - 1) * 0.5 + 0.5  # type: ignore[operator]
        young = g.g_old2young(x * 2 - 1) * 0.5 + 0.5  # type: ignore[operator]
    torch.testing.assert_close(y[0], old[0], atol=2e-6, rtol=0)
    torch.testing.assert_close(y[1], young[1], atol=2e-6, rtol=0)
    torch.testing.assert_close(y[2], old[2], atol=2e-6, rtol=0)


# ----------------------------------------------------------------------------- quality protocol


def test_stargan_and_attgan_test_labels_follow_the_official_scripts() -> None:
    from targets.training.quality import attgan_targets, stargan_targets

    attrs = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    org = torch.tensor([[1.0, 0.0, 0.0, 1.0, 0.0]])
    assert stargan_targets(org, attrs, 1).tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    assert stargan_targets(org, attrs, 0).tolist() == [[1.0, 0.0, 0.0, 1.0, 0.0]]
    assert stargan_targets(org, attrs, 3).tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]]

    attrs13 = ("Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Mustache", "No_Beard")
    org = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]])
    want, cond = attgan_targets(org, attrs13, 0)  # Bald on -> Bangs off
    assert want.tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]]
    assert cond[0, 0] == 1.5  # +test_int 1.0 on AttGAN's scale
    want, cond = attgan_targets(org, attrs13, 3)  # Blond on -> Black off
    assert want[0, 2:5].tolist() == [0.0, 1.0, 0.0]
    want, cond = attgan_targets(org, attrs13, 5)  # Mustache on -> No_Beard off
    assert want[0, 5:].tolist() == [1.0, 0.0]
    want, cond = attgan_targets(org, attrs13, 2)  # Black off: nothing else changes
    assert want.tolist() == [[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]] and cond[0, 2] == -0.5
